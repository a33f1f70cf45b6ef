"""Offline tooling: running migrations, the helpers the revisions share, the legacy shape, SQL script
generation, Prisma export, backup and restore, seed data.

Imported by the CLI, the migrations, the benchmarks and the tests, never by the API: nothing under
`mobility.ops` is loaded by `mobility.main` (tests/core/test_layers.py checks it). It may import
`mobility.core` and the models; nothing in `mobility.core` imports it.
"""
