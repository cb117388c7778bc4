#!/bin/sh
# meter-intake, compose: the certificate nginx serves. Run by the nginx image's entrypoint
# (/docker-entrypoint.d/) before it renders the templates. A certificate and key already in
# /etc/nginx/tls/ (cert.pem, key.pem: your own, mounted there) are used as they are; otherwise a
# self-signed one for the names clients use (nginx on the compose network, 127.0.0.1 and
# localhost from the host) is made once into the nginx-tls volume, where the load generator's
# container finds it to trust.
set -eu
dir=/etc/nginx/tls
if [ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ]; then
  echo "meter-intake: serving $dir/cert.pem"
  exit 0
fi
mkdir -p "$dir"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 825 -subj "/CN=meter-intake compose" \
  -addext "subjectAltName=DNS:nginx,DNS:localhost,IP:127.0.0.1" \
  -addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature" \
  -addext "extendedKeyUsage=serverAuth" 2>/dev/null
chmod 644 "$dir/cert.pem"
echo "meter-intake: made a self-signed certificate, $dir/cert.pem (in the nginx-tls volume)"
