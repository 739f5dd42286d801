"""
Set up the database schema for the tutorial.

Adapted from the tutorial's setup_db.py: the connection comes from DATABASE_URL (the
environment, or the .env file beside this script) instead of fixed parameters, and the
database itself is created when it does not exist yet.
"""
import asyncio
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from dotenv import dotenv_values

DEFAULT_URL = "postgresql://postgres:secret@localhost:5432/users_db"

SCHEMA = '''
    CREATE TABLE IF NOT EXISTS users (
        id SERIAL PRIMARY KEY,
        email VARCHAR(255) UNIQUE NOT NULL,
        name VARCHAR(255) NOT NULL,
        active BOOLEAN DEFAULT true,
        created_at TIMESTAMP DEFAULT NOW(),
        last_login TIMESTAMP
    )
'''

SAMPLE_USERS = '''
    INSERT INTO users (email, name, active)
    VALUES
        ('alice@example.com', 'Alice Smith', true),
        ('bob@example.com', 'Bob Johnson', true),
        ('charlie@example.com', 'Charlie Brown', false)
    ON CONFLICT (email) DO NOTHING
'''


def database_url() -> str:
    dotenv = dotenv_values(Path(__file__).with_name(".env"))
    return os.environ.get("DATABASE_URL") or dotenv.get("DATABASE_URL") or DEFAULT_URL


async def create_database_if_missing(url: str) -> None:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def setup_database(url: str) -> int:
    await create_database_if_missing(url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SCHEMA)
        await conn.execute(SAMPLE_USERS)
        return await conn.fetchval("SELECT COUNT(*) FROM users")
    finally:
        await conn.close()


if __name__ == '__main__':
    url = sys.argv[1] if len(sys.argv) > 1 else database_url()
    count = asyncio.run(setup_database(url))
    print("✅ Database setup complete!")
    print(f"   Created users table with {count} users")
