server {
	listen 80;
	listen [::]:80;
	server_name hooks.example.com;

	access_log /var/log/nginx/hooks.access.log;

	location / {
		return 404;
	}

	location /bizppurio/callback {
		include snippets/proxy-params.conf;
		proxy_http_version 1.1;
		proxy_set_header Connection "";
		proxy_pass http://app_backend;
	}
}
