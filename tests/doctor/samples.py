"""Configs the doctor tests share: the seed's broken mirror and a protected one.

`protected_mirror()` follows the layout hookshift generates: an internal mirror location with
short timeouts that hands the copy to a local relay, which answers at once and mirrors it on to
an upstream whose primary is a local server block (resolver + variable proxy_pass to the stage,
SNI, verification, credentials cleared) and whose backup fails at once.
"""

from __future__ import annotations

STAGE = "abc123.execute-api.ap-northeast-2.amazonaws.com"


def seed_mirror(callback_extra: str = "", target_extra: str = "", server_extra: str = "") -> str:
    """The seed's `location = /mirror_api_gw` inside a realistic callback server."""
    return f"""
upstream app {{ server 127.0.0.1:9000; }}
server {{
    listen 127.0.0.1:8081;
    server_name callback.example.com;
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    {server_extra}
    location /bizppurio/callback {{
        {callback_extra}
        mirror /mirror_api_gw;
        proxy_pass http://app;
    }}
    location = /mirror_api_gw {{
      internal;
      {target_extra}
      resolver 1.1.1.1 8.8.8.8 valid=10s;
      proxy_pass https://{STAGE}/dev$request_uri;
    }}
}}
"""


def protected_mirror(
    callback_extra: str = "",
    target_extra: str = "",
    ca_file: str = "/etc/ssl/certs/ca-certificates.crt",
    relay_dir: str = "/run/hookshift",
) -> str:
    return f"""
upstream app {{ server 127.0.0.1:9000; }}
upstream hookshift_stage {{
    server 127.0.0.1:18443 max_fails=1 fail_timeout=10s;
    server 127.0.0.1:18444 backup;
}}
server {{
    listen 127.0.0.1:8081;
    server_name callback.example.com;
    proxy_set_header Host $host;
    location /bizppurio/callback {{
        {callback_extra}
        mirror /_hookshift_mirror;
        mirror_request_body on;
        proxy_pass http://app;
    }}
    location = /_hookshift_mirror {{
        internal;
        {target_extra}
        proxy_connect_timeout 1s;
        proxy_send_timeout 1s;
        proxy_read_timeout 1s;
        proxy_pass http://unix:{relay_dir}/relay.sock:$request_uri;
    }}
}}
server {{
    listen unix:{relay_dir}/relay.sock;
    client_body_temp_path {relay_dir};
    location = /bizppurio/callback {{
        mirror /_hookshift_stage;
        empty_gif;
        error_page 405 =204 @accepted;
    }}
    location @accepted {{
        return 204;
    }}
    location = /_hookshift_stage {{
        internal;
        proxy_connect_timeout 1s;
        proxy_send_timeout 1s;
        proxy_read_timeout 5s;
        proxy_pass http://hookshift_stage$request_uri;
    }}
}}
server {{
    listen 127.0.0.1:18443;
    location / {{
        resolver 10.0.0.2 valid=10s ipv6=off;
        resolver_timeout 2s;
        proxy_connect_timeout 2s;
        proxy_read_timeout 2s;
        proxy_ssl_server_name on;
        proxy_ssl_name {STAGE};
        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate {ca_file};
        proxy_set_header Host {STAGE};
        proxy_set_header Authorization "";
        proxy_set_header Cookie "";
        proxy_set_header Proxy-Authorization "";
        proxy_pass https://{STAGE}/dev$request_uri;
    }}
}}
"""
