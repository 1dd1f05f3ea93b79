#!/usr/bin/env bash
# clickhouse.sh - starts/stops a private ClickHouse (Debian's 18.16) for bench/store: loopback
# only, its own config and data directory, ports the kernel hands out, never the system service.
#
#   clickhouse.sh start DIR zstd|lz4    -> prints "HTTP_PORT PID"
#   clickhouse.sh stop DIR
set -euo pipefail
cmd=$1 dir=$2
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
case "$cmd" in
start)
	codec=$3
	mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/log"
	http=$(free_port) tcp=$(free_port) inter=$(free_port)
	comp=""
	if [ "$codec" = zstd ]; then
		comp="<compression><case><min_part_size>0</min_part_size><min_part_size_ratio>0</min_part_size_ratio><method>zstd</method></case></compression>"
	fi
	cat > "$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$dir/log/server.log</log><errorlog>$dir/log/error.log</errorlog><size>100M</size><count>2</count></logger>
  <http_port>$http</http_port>
  <tcp_port>$tcp</tcp_port>
  <interserver_http_port>$inter</interserver_http_port>
  <listen_host>127.0.0.1</listen_host>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>5368709120</mark_cache_size>
  <max_concurrent_queries>10</max_concurrent_queries>
  $comp
</yandex>
XML
	cat > "$dir/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default>
    <max_memory_usage>10000000000</max_memory_usage>
    <allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>
  </default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
  </interval></default></quotas>
</yandex>
XML
	if [ "$(id -u)" -eq 0 ] && id clickhouse >/dev/null 2>&1; then
		chown -R clickhouse "$dir"
		setsid runuser -u clickhouse -- clickhouse-server --config-file="$dir/config.xml" \
			>"$dir/log/stdout.log" 2>&1 < /dev/null &
	else
		setsid clickhouse-server --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 < /dev/null &
	fi
	pid=$!
	echo "$pid" > "$dir/pid"
	for _ in $(seq 1 100); do
		if curl -sf "http://127.0.0.1:$http/ping" >/dev/null 2>&1; then
			echo "$http $pid"
			exit 0
		fi
		sleep 0.2
	done
	echo "clickhouse did not start; see $dir/log" >&2
	tail -20 "$dir/log/stdout.log" "$dir/log/error.log" >&2 2>/dev/null || true
	kill "$pid" 2>/dev/null || true
	exit 1
	;;
stop)
	if [ -f "$dir/pid" ]; then
		pid=$(cat "$dir/pid")
		kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		kill -9 -- "-$pid" 2>/dev/null || true
		rm -f "$dir/pid"
	fi
	;;
esac
