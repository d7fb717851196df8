"""login/logout: check credentials against the registry (its /v2/ challenge), then store them."""
from __future__ import annotations

from nsbox.image.registry.auth import AuthFile, Credentials
from nsbox.image.registry.client import AuthError, RegistryClient, RegistryError


def login(paths, server: str, username: str, password: str, tls_verify=None, cert_dir=None) -> None:
    from nsbox.image.registry.auth import server_key
    from nsbox.image.registry.pull import auth_path
    domain = server_key(server)
    domain = "docker.io" if domain.startswith("https://") else domain
    client = RegistryClient(domain, creds=Credentials(username, password), tls_verify=tls_verify, cert_dir=cert_dir)
    try:
        client.authenticate_now()
        # basic auth (or a registry with no auth at all) is only proven by an authorized request
        client.request("GET", "/v2/").body()
    except AuthError as e:
        raise AuthError(f"login to {server} failed: {e}") from None
    except RegistryError as e:
        raise RegistryError(f"login to {server} failed: {e}") from None
    AuthFile(auth_path(paths)).set(server, Credentials(username, password))


def logout(paths, server: str) -> bool:
    from nsbox.image.registry.pull import auth_path
    return AuthFile(auth_path(paths)).remove(server)
