"""`avatargen api`: the avatar service for many users, on the same engine as the CLI.

One module per job: `db` (SQLite or PostgreSQL connections, transactions), `migrations` (the
service's named schema steps), `accounts` (users, tiers, tokens), `queue` (accept, claim with a
lease, settle/refund exactly once, cancel, daily limits), `ledger_adapter` (the ledger
BatchRunner writes to, backed by one claimed job), `engine` (building the engine, in one
place), `worker` (threads or a process that run claimed jobs), `uploads` (bounded, sniffed
photos), `app` (the Starlette routes), `webhooks` (signed completion notices).
Everything here needs the `api` extra and is imported only by `avatargen api|worker|users`.
"""
