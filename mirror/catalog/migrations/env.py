"""Alembic environment: runs migrations on the engine the catalog hands over."""

from alembic import context

import mirror.advisories.models  # noqa: F401  (registers the advisory tables on Base)
import mirror.auth.models  # noqa: F401  (registers the api_tokens table on Base)
import mirror.dashboard.sessions  # noqa: F401  (registers dashboard_sessions)
import mirror.scheduler.models  # noqa: F401  (registers leases, scheduler_jobs, whitelist_states)
from mirror.catalog.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        from mirror.catalog.session import create_catalog_engine

        engine = create_catalog_engine(config.get_main_option("sqlalchemy.url"))

    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
