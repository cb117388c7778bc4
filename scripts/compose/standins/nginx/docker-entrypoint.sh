#!/bin/sh
# STAND-IN for the official nginx image's /docker-entrypoint.sh and its
# 20-envsubst-on-templates.sh (test tooling only): the scripts of /docker-entrypoint.d/ run
# first, then every /etc/nginx/templates/*.template is
# rendered with envsubst, replacing only variables that are defined, into
# $NGINX_ENVSUBST_OUTPUT_DIR (default /etc/nginx/conf.d), then nginx starts.
set -e
if [ "$1" = nginx ] || [ "$1" = nginx-debug ]; then
  # Like the official image: the executable *.sh scripts of /docker-entrypoint.d/, in order.
  if [ -d /docker-entrypoint.d ]; then
    for script in $(find /docker-entrypoint.d/ -follow -type f -name '*.sh' | sort); do
      if [ -x "$script" ]; then echo "stand-in entrypoint: running $script"; "$script"; fi
    done
  fi
  template_dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
  suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
  output_dir="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
  defined_envs=$(printf '${%s} ' $(awk 'END { for (name in ENVIRON) { print name } }' < /dev/null))
  if [ -d "$template_dir" ]; then
    find "$template_dir" -follow -type f -name "*$suffix" -print | while read -r template; do
      relative_path="${template#"$template_dir/"}"
      output_path="$output_dir/${relative_path%"$suffix"}"
      mkdir -p "$(dirname "$output_path")"
      echo "stand-in entrypoint: rendering $template to $output_path"
      envsubst "$defined_envs" < "$template" > "$output_path"
    done
  fi
fi
exec "$@"
