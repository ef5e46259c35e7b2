"""Real conda packages and a local upstream channel, for the demo and for tests.

`packages` builds `.conda` and `.tar.bz2` files, `channel` indexes a folder
of them as an upstream would and builds the demo channel, and
`upstream_server` serves such a folder on 127.0.0.1.
"""

from mirror.demo.channel import build_demo_upstream, index_channel, record_for
from mirror.demo.packages import OMIT, PackageSpec, TarMember, build_members, build_package
from mirror.demo.upstream_server import StaticChannelServer

__all__ = [
    "OMIT",
    "PackageSpec",
    "StaticChannelServer",
    "TarMember",
    "build_demo_upstream",
    "build_members",
    "build_package",
    "index_channel",
    "record_for",
]
