# shellcheck shell=bash
# Written by Hoist's Python buildpack; sourced at dyno boot. gunicorn settings heroku/python
# sets: trust X-Forwarded-* from the router (any address), access log on stdout.
export FORWARDED_ALLOW_IPS='*'
export GUNICORN_CMD_ARGS="${GUNICORN_CMD_ARGS:---access-logfile -}"
