"""Offline vulnerability advisories: OSV import, matching against conda packages, channel policy.

Modules: `models` (catalog tables), `osv` (record parsing), `severity`
(GitHub levels and CVSS v3 scores), `importer` (folder and zip import),
`versions` (range evaluation), `matching` (`AdvisoryIndex`) and `policy`
(`evaluate_vulnerabilities`, `recheck`).
"""
