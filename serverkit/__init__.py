"""Server plumbing shared by Kuat's two services, the site controller and the national HSC registry.

What lives here is what both need and neither owns: database engines and sessions (SQLite WAL / PostgreSQL), the
clock and Astana dates, API keys with roles and scopes and the FastAPI dependency that checks them, and the one
exception tree that every route's errors map to HTTP through. Nothing here knows of gateways, power or machines.
"""
