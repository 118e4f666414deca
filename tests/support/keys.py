"""Fixed test keys: two RSA keys (for rotation) and one EC P-256 key.

Generated once with ``cryptography`` and pasted here, as simplejwt's tests do:
tests are reproducible and never spend time generating keys. They sign test
tokens only; never use them anywhere else.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

RSA_KEY_1_PEM = """\
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDL0/lBK67Uk+EU
686gSQk56gK40RrRl4nPeJA8++qQ0JNOk+WA69UX+iyVjuqbSnT8Lvy3BtP2RLiZ
MISsQXs/nRDLDOyMrN8vSlUQxonqAKpbl8NwFervuEUDWK++shhH7cO2dnDd2oBU
9Vluho2RQ5B1dqJrU02dGCiVMcGeJebDJLxr8/GwM9jREhvpCu3mfv3ZEQwLxJiY
uC9droWO5aB/BZl5WaxhznEzlMbYWC3lSCykh818v8G/HJu9Yy83JY5tEdOxtq3k
RMeGnXXA35yaI9g7Lsq9wajsbs5vb+oJzl0idCJF1O3p4jnBxeHw9NbhCsxgRcTH
Vl+ZLclnAgMBAAECggEAOYOQLywA0poBppIdRUwmjtFxwC28yAxfBgxqgtLArukz
z7XayiSBhhkBEJh5qaT6Wph1lb2W/MQKZKt0nFiDywDqVqlIbC9xcJokY63qB331
lA/ARXXhy4+u5ZFWUdRWFqHIGknUcj1v/ckXWaEc/DLY5dQ6Y1dnrJ6/AM4/6Hwf
daBo3tVRK8ObAkPwuscRbqWI0R55PBJiwoYt/phaRVSxojQCZZ7x05FM1C6RInab
YX4PQP5YthiRnnRBVryxFxS/y2PDwH0X8iNI/NrVDGTXaUYwENp+xJFYfcE49sNW
EVBG9zWNYeWFl7XitrAvVNqkvJP6L9J8B67wjOXqpQKBgQDlhMkoFQ/OS4oDoSGC
8JYyLNFHZl7f0Hie+MAyhFIuGXFk4JOr7Q0wCWEuYMPrWz1VbUNUc0rDu8pelIGv
5mvOPkI6GB2h7CJkotUeYjLUaE9nLf+AsC1J34gZkLcYvmFZn8qoiAljCEDdSaTp
DNpZZB1BCI8m8Ewvs9nITln1KwKBgQDjWF8TMMVH+TFgi0zmGKbX+9Y9aaGlTknP
mO/jln+7+Tr2iNxx6Q8axtAOZgrZohyrDA3/n+pZLKZYYAkjhKcaX69M8AGyXfTL
8suWHpH1+YlWjhzHWyCg8ws33cRWvxxawwJdn/7icC83LwOk/dW8ksR5I1+DPzH2
OiUapCVWtQKBgQDZhFSXtg46toBgHC8ERzow5ySXhD9Z4drO3nRX6+tuYRKERgnt
oEUlR15gc7h5rwibk2eB+5nZknmh1SBrMfbtiTd+kyhSMtYNhfxwRSRjBVBrOr6w
mUbygfQcNngv7Q2ZwMRxoCs1PbcrgQXXECVHHohS/+ebQZUSiGJXYVoD7QKBgARd
K+YIZ6EMDYCW6/D2xC0dLm2bW3j62bvcaa5qsyT+kb0tv12IZbvT2SaNmuO2kupN
nu8rOKphiwfjQAmogDSnZYwKh13PI+XOUU4eZBreoV5B+BdzjlrIj4yQ+zXXEUpE
uAToD1J1aNKcWmuOW83020SgAzNXwTPCxfeO8xCJAoGABy8PbqeRgFw4Z6pVMpNJ
NHSFUzEVKxv++oDA1Koz5T1IGYe92pvO6nB8srVQGB6Y4basT8+Z0mk5xZVvgzk8
2Nz90tMaRdwKkebOrwBH5Gag29LsiF0lva+ugOjNN6VQZzd9tZzKl4KFLhsyo2N4
FDid206yeH4ADvIb1Uzed5c=
-----END PRIVATE KEY-----
"""

RSA_KEY_2_PEM = """\
-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDY0UkqUe4Posdl
fC2HaeYvkIaL5A/thAiCIbfpjSHS2UH6F/srrer8bEo8xEtTs+khW5mqF99JVoF0
A2acO6yAvC7QPlreqSW6NdQJGs8lAsAq96KiMNB4SXyTGPwJIkRbKbyUDLqTn9WQ
aRB5EFTzrkHm2SzS8Zqm0nRjMI5g1Oc2ABJmki1itY0i/eevoUhxfzp+3L5SdoXc
QnS0YMW3VkGBok/MnMyZC8ss6pY2FQ3oyQVlVgMi4aw9b9CtrX7DduXiLvgvehD8
AB65Ixq7gM2EC6iWdiPPJgAhPSaNwYL0CJCPMX1ofhGlHX9Io4MHBCmnMcLwPSC7
6WWN8oy3AgMBAAECggEARXJXlJIUhfaWFof9T0vYunB44BLnFSU+0mu5bDnT1STY
kKIgxd9ZjoujBa68D+3m5NPhts0ZrHRkV4QFWFJ20O81sWbflUUpe+jk5xuqsMie
Q8T41yl6hKTJHZaZl9VdfrOyHtuq4UEHV0+Hwrc79qdgnW//fvt7FScAt4qkeBfy
l5GP3SyIbDmXwa7T4UI2vAvqbU/TE2+xDTqQ5bfI6zvjfmJjs9MGy+Av6xMHVb+o
Ea4qwg8o+Wxme0xo3WRHIwEaG9Xn1l/hsQlIBTR43Fn5maCkjh7VWsgZYkeARh/y
fZRHu9Gt4UF3CMQfGYaDpt0ZcqDBD4uLqYZnQpMLpQKBgQDwnFfD+djZS3t4QyT1
JAoj6aLiRsIj93GEiEvsXKOqjiAs3cGjBrn+xlHuLrkFxUk4WI8YVr30eJDJqT5H
FHHCyP62NOMtvxNV0+pHbXwO2FUZ+NSbkvAT00zfgRGTiH9fYk6/djsgRvoHQ+Y0
mDfTSYKSHNuIR+Upy0tCp0R6HQKBgQDmr10H7q30f/w7lEu8ajXdtwGgVX3mPQJt
Dp/jhK0znNBcrNSbQf1h5qptJtdw9GviCQG69JtGxn63coeGfbyuoIgQM4sA6y0K
NU/DLeoCuYTvjmIE5o4J3csKK1btp8JwerKWUgzWZyQrOztBxDNBkxG4OjdzoxLq
8eKfTohJ4wKBgQDBsqr46q8Gpzx7oVokOuIq7RAipyHtQGtTbUHpwt5DFG2UkOUs
r+KV1uPoIhbzLVJ3mNuBlXsQTusIXUX0hOHcFGDxH/xvPG59Xr8wx1Piw4cnBGlr
4MuCuk0ddNNIeM9JY2PPwIdywZDQvnmZh50RbBFAPRkCShaTIcSxoOSAhQKBgQCU
l+s+G9Gzx+lK23h5kpTGD4cdp1QkxbHVW/FEFgeXUnCo8a81nyk/Md0f2EA4g0km
3ZRewAdxbJTdSAniaQXsGn3qqbjlS5fElpidaert/GCUCsw6yeQ+mL6b+1TQWxqV
Z4O37nxUczXKHypJb79wgvKMD/v+IdIiwtKuuWBy7wKBgG3FgvQAlRNwYLAgSlqp
klLowK1iyt85l8UnfSfRajnwP645BxP7RTvgmgSqFOGVGCyGVYqI6VO4Mlbx6TZ/
6PS4JbHP8uPoNBgh3uuEpHsHnxf2UEK44TkyHwfoO/tE6rivNvlTYo8Ha+Yzffp9
VECrVg9zMaTffXdI+fzom516
-----END PRIVATE KEY-----
"""

EC_KEY_PEM = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg3N/ONeIT9tbEJ+0d
shcJrKLwJDO/uxa8EAXjEDFNAGyhRANCAARpgP3V7GYB1PS2LJ4QhF/lXYIEn7ta
Ac7OjMuTiHlZl5+Nhwbb1vSltO9oSAOSSEL9AKITVor60XLEG68S0IhF
-----END PRIVATE KEY-----
"""


def _load(pem: str) -> Any:
    return serialization.load_pem_private_key(pem.encode("ascii"), password=None)


RSA_KEY_1: RSAPrivateKey = _load(RSA_KEY_1_PEM)
RSA_KEY_2: RSAPrivateKey = _load(RSA_KEY_2_PEM)
EC_KEY: EllipticCurvePrivateKey = _load(EC_KEY_PEM)

RSA_KID_1 = "test-rsa-1"
RSA_KID_2 = "test-rsa-2"
EC_KID = "test-ec-1"


def public_pem(key: RSAPrivateKey | EllipticCurvePrivateKey) -> bytes:
    """The public half as PEM: what an ``alg`` confusion attack signs HS256 tokens with."""
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_jwk(key: RSAPrivateKey | EllipticCurvePrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    """The public JWK an authorization server publishes for ``key``."""
    if isinstance(key, RSAPrivateKey):
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig", **extra}
