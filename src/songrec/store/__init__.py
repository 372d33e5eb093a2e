"""The event store: one database (SQLite by default, PostgreSQL in production) with the request
log, feedback, labels, promotions and monitoring tables, its engine, queries and the request
log's writer.
"""
