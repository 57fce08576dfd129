"""The README's "Why was I refused?" section shows real output: this test makes it again."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import httpx
from starlette.applications import Starlette

from jwt_guard import JWTGuardMiddleware
from jwt_guard.testing import LocalIssuer

README = (Path(__file__).parent.parent / "README.md").read_text()


async def test_the_three_common_mistakes_in_the_readme_are_real_output() -> None:
    idp = LocalIssuer(issuer="https://idp.example.com/", audience="orders-api", algorithm="RS256")
    es256 = LocalIssuer(issuer="https://idp.example.com", audience="orders-api", algorithm="ES256")
    # Mistake 1 is in the configuration: the issuer without its trailing slash.
    verifier = idp.verifier(issuer="https://idp.example.com")
    app = JWTGuardMiddleware(Starlette(), verifier=verifier, debug=True)
    tokens = [
        idp.mint(),
        idp.mint(issuer="https://idp.example.com", audience="https://orders.example.com"),
        es256.mint(),
    ]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("jwt_guard")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    bodies = []
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for token in tokens:
                response = await client.get("/", headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 401
                bodies.append(response.text)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    lines = [line for line in stream.getvalue().splitlines() if "refused" in line]
    assert len(lines) == 3
    for text in (*lines, *bodies):
        assert f"\n   {text}\n" in README, text
