"""pytest plugin (registered through the ``pytest11`` entry point): the ``jwt_issuer`` fixture.

def test_admin_only(jwt_issuer):
    app = make_app(verifier=jwt_issuer.verifier())
    token = jwt_issuer.mint(roles=["admin"])
    ...
"""

from __future__ import annotations

import pytest

from .testing import LocalIssuer


@pytest.fixture
def jwt_issuer() -> LocalIssuer:
    """A fresh in-process issuer for one test (a pytest fixture).

    An ES256 key pair (``DEFAULT_ALGORITHM``), issuer ``https://issuer.test``, audience
    ``api://test``."""
    return LocalIssuer()
