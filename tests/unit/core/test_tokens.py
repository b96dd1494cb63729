"""Access tokens carry exactly the spec's claims and reject every kind of forgery."""

import time

import jwt
import pytest

from agentlightning.api.errors import status_for
from agentlightning.auth import passwords, tokens
from agentlightning.errors import Unauthorized
from agentlightning.settings import Settings

SECRET = "s" * 48
ISSUER = "agent-lightning"


def _token(**overrides: object) -> str:
    args = {
        "user_id": 7,
        "username": "john.doe",
        "role": "developer",
        "secret": SECRET,
        "issuer": ISSUER,
        "ttl_seconds": 60,
    }
    args.update(overrides)
    return tokens.issue_access_token(**args)[0]  # type: ignore[arg-type]


def test_payload_has_exactly_the_spec_claims() -> None:
    token = _token()
    header = jwt.get_unverified_header(token)
    payload = jwt.decode(token, SECRET, algorithms=["HS256"], issuer=ISSUER)
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert sorted(payload) == sorted(tokens.ACCESS_TOKEN_CLAIMS)
    assert payload["iss"] == "agent-lightning"
    assert payload["user_id"] == "7" and payload["username"] == "john.doe" and payload["role"] == "developer"
    assert payload["permissions"] == ["agent:*", "rl:*", "workflow:*", "knowledge:*", "system:read"]
    assert payload["exp"] > payload["iat"]


def test_valid_token_decodes() -> None:
    claims = tokens.decode_access_token(_token(), secret=SECRET, issuer=ISSUER)
    assert claims.user_id == 7 and claims.role == "developer"


def test_two_tokens_issued_together_differ() -> None:
    assert _token() != _token()


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: _token(ttl_seconds=-5), "TOKEN_EXPIRED"),
        (lambda: _token(issuer="someone-else"), "TOKEN_INVALID"),
        (lambda: _token(secret="another-secret-" + "y" * 40), "TOKEN_INVALID"),
        (lambda: _token()[:-3] + ("aaa" if not _token().endswith("aaa") else "bbb"), "TOKEN_INVALID"),
        (
            lambda: jwt.encode(
                {
                    "user_id": "1",
                    "username": "x",
                    "role": "admin",
                    "permissions": ["*"],
                    "exp": int(time.time()) + 60,
                    "iat": int(time.time()),
                    "iss": ISSUER,
                },
                key=None,
                algorithm="none",
            ),
            "TOKEN_INVALID",
        ),
        (lambda: "not-a-jwt", "TOKEN_INVALID"),
    ],
    ids=["expired", "wrong-issuer", "wrong-secret", "tampered", "alg-none", "garbage"],
)
def test_bad_tokens_are_rejected(make, code: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Unauthorized) as info:
        tokens.decode_access_token(make(), secret=SECRET, issuer=ISSUER)
    assert info.value.code == code
    assert status_for(info.value) == 401


def test_payload_tampering_with_role_is_rejected() -> None:
    header, payload, signature = _token(role="user").split(".")
    forged_payload = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b'"user"', b'"admin"')
    ).decode()
    with pytest.raises(Unauthorized):
        tokens.decode_access_token(f"{header}.{forged_payload}.{signature}", secret=SECRET, issuer=ISSUER)


def test_api_keys_have_256_bits() -> None:
    key = tokens.new_api_key()
    assert key.startswith("agl_") and tokens.looks_like_api_key(key)
    assert len(jwt.utils.base64url_decode(key[4:])) == 32


def test_passwords_are_bcrypt_cost_12_by_default() -> None:
    assert Settings(_env_file=None).bcrypt_rounds == 12  # type: ignore[call-arg]
    hashed = passwords.hash_password("correct horse battery")
    assert hashed.startswith("$2b$12$")
    assert passwords.verify_password("correct horse battery", hashed)
    assert not passwords.verify_password("wrong", hashed)
