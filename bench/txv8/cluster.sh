# bench/txv8/cluster.sh: sourced by run.sh and callgrind.sh. A throwaway cluster with txv8
# preloaded, reached only through a Unix socket in its own folder; when run as root, the
# cluster runs as the postgres OS user (PostgreSQL refuses root). Needs PGBIN.

as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# start_txv8_cluster DIR PORT [SETTING...]: initdb DIR/data (superuser "bench", trust), the
# socket in DIR, each SETTING ("name = value") appended to postgresql.conf, then start it.
start_txv8_cluster() {
  local dir=$1 port=$2
  shift 2
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  as_owner "$PGBIN/initdb" -D "$dir/data" -U bench -A trust >/dev/null
  printf '%s\n' "port = $port" "listen_addresses = ''" "unix_socket_directories = '$dir'" \
    "shared_preload_libraries = 'txv8'" "$@" >>"$dir/data/postgresql.conf"
  as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w start >/dev/null
}

# stop_txv8_cluster DIR: a fast shutdown, waiting for it
stop_txv8_cluster() { as_owner "$PGBIN/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null; }
