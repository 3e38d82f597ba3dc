"""`/ui`: the "My exports" page, its static files and the development sign-in.

The page holds no secret and no user data: the browser signs in by pasting a bearer token (or,
in development mode only, by asking `POST /ui/dev-login` for one), keeps it in
`sessionStorage` and sends it in the `Authorization` header of every API call; it never goes
into a URL. A strict Content-Security-Policy allows scripts, styles and requests from this
origin only (no inline script or style at all).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Scope

from api.auth import mint_token, owner_from_token
from api.deps import SettingsDep
from api.errors import ApiError

HERE = Path(__file__).parent
DEV_LOGIN_TTL = timedelta(hours=8)
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class _StaticFiles(StaticFiles):
    """The page's script and stylesheet, with the same headers as the page (nosniff above all:
    a browser must never run them as anything but what their content type says)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(
            {name: SECURITY_HEADERS[name] for name in ("X-Content-Type-Options", "Referrer-Policy")}
        )
        return response


router = APIRouter(prefix="/ui", tags=["ui"], include_in_schema=False)
templates = Jinja2Templates(directory=HERE / "templates")
static_files = _StaticFiles(directory=HERE / "static")


@router.get("", response_class=HTMLResponse)
async def page(request: Request, settings: SettingsDep) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        "index.html",
        {"development_mode": settings.development_mode},
        headers=SECURITY_HEADERS,
    )


class DevLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sub: Annotated[str, Field(min_length=1, max_length=200)]
    tenant: Annotated[str, Field(min_length=1, max_length=200)]


class DevToken(BaseModel):
    token: str
    expires_in_seconds: int


@router.post("/dev-login")
async def dev_login(body: DevLogin, settings: SettingsDep) -> DevToken:
    """A token for any identity, signed with the API's secret: development mode only (the
    same switch that allows the published development secrets); elsewhere this is a 404."""
    if not settings.development_mode:
        raise ApiError(404, "not_found", "no development sign-in outside development mode")
    token = mint_token(settings.api_jwt_secret, body.sub, body.tenant, DEV_LOGIN_TTL)
    owner_from_token(token, settings)  # the identity rules of every token (401 otherwise)
    return DevToken(token=token, expires_in_seconds=int(DEV_LOGIN_TTL.total_seconds()))
