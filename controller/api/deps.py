"""Shared route dependencies: the services of the running app, and the roles allowed to read or act."""

from __future__ import annotations

from fastapi import Request

from controller.runtime import Services
from registry.auth import require_role
from registry.models import Role


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


read_fleet = require_role(Role.OPERATOR, Role.REGULATOR, Role.GRID)
operate = require_role(Role.OPERATOR)
