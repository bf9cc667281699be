#!/usr/bin/env bash
# testenv.sh: bring up (or down) the two real Docker daemons unroot's tests run against.
#
#   scripts/testenv.sh up     install what is missing, start a rootful dockerd and a rootless one
#   scripts/testenv.sh down   stop only what 'up' started (by pid)
#   scripts/testenv.sh status print what runs and where
#
# What 'up' does to this machine (use a throwaway VM or CI machine):
#   - apt-get installs the Debian packages it needs when they are missing;
#   - creates /dev/net/tun when missing;
#   - starts a rootful dockerd when nothing answers on /var/run/docker.sock;
#   - creates the user $UNROOT_E2E_USER (default unroot-e2e) with exactly one subuid and one subgid
#     range, $UNROOT_E2E_SUBID_START:65536 (default 231072: deliberately not 100000);
#   - starts that user's rootless dockerd (dockerd-rootless.sh) on /run/user/UID/docker.sock;
#   - imports a busybox-based test image into the rootful daemon;
#   - writes what the tests need to $UNROOT_E2E_ENV (default /var/lib/unroot-e2e/env).
# It is idempotent: run it again and it only checks.
set -euo pipefail

E2E_USER=${UNROOT_E2E_USER:-unroot-e2e}
SUBID_START=${UNROOT_E2E_SUBID_START:-231072}
SUBID_COUNT=65536
STATE=/var/lib/unroot-e2e
ENV_FILE=${UNROOT_E2E_ENV:-$STATE/env}
RUN=/run/unroot-e2e
LOGS=/var/log/unroot-e2e
IMAGE=unroot-e2e/busybox:latest
SOURCE_SOCK=/var/run/docker.sock
PACKAGES=(docker.io rootlesskit slirp4netns uidmap iptables acl attr libcap2-bin busybox-static rsync strace procps ansible-core docker-compose)

log() { printf 'testenv: %s\n' "$*" >&2; }
die() {
	printf 'testenv: error: %s\n' "$1" >&2
	[ $# -gt 1 ] && printf 'hint: %s\n' "$2" >&2
	exit 1
}

# wait_for CMD... : retry a command for at most 60 s.
wait_for() {
	local i
	for i in $(seq 1 120); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.5
	done
	return 1
}

need_root() {
	[ "$(id -u)" -eq 0 ] || die "must run as root" "sudo $0 $*"
}

install_packages() {
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	# policy-rc.d keeps the package from starting its own daemon; we start ours by pid.
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed" "run it by hand to see why"
	rm -f /usr/sbin/policy-rc.d
}

check_kernel() {
	local max
	max=$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo 0)
	[ "$max" -gt 0 ] || die "user namespaces are disabled (user.max_user_namespaces=$max)" \
		"sysctl -w user.max_user_namespaces=28633"
	if [ -e /proc/sys/kernel/unprivileged_userns_clone ]; then
		[ "$(cat /proc/sys/kernel/unprivileged_userns_clone)" = 1 ] ||
			die "unprivileged user namespaces are disabled" "sysctl -w kernel.unprivileged_userns_clone=1"
	fi
	if [ ! -c /dev/net/tun ]; then
		log "creating /dev/net/tun"
		mkdir -p /dev/net
		mknod /dev/net/tun c 10 200
	fi
	chmod 666 /dev/net/tun
}

docker_ok() { docker -H "$1" info >/dev/null 2>&1; }

start_rootful() {
	if docker_ok "unix://$SOURCE_SOCK"; then
		log "rootful dockerd already answers on $SOURCE_SOCK"
		return 0
	fi
	log "starting rootful dockerd (log $LOGS/dockerd.log)"
	setsid dockerd --pidfile "$RUN/dockerd.pid" -H "unix://$SOURCE_SOCK" \
		>"$LOGS/dockerd.log" 2>&1 </dev/null &
	echo $! >"$RUN/dockerd.started"
	wait_for docker_ok "unix://$SOURCE_SOCK" ||
		die "rootful dockerd did not answer within 60s" "see $LOGS/dockerd.log"
}

ensure_user() {
	if ! id "$E2E_USER" >/dev/null 2>&1; then
		log "creating user $E2E_USER"
		# SUB_*_COUNT=0 keeps useradd from adding a range of its own: we want exactly ours.
		useradd -m -s /bin/bash -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 "$E2E_USER"
	fi
	local f want="$E2E_USER:$SUBID_START:$SUBID_COUNT"
	for f in /etc/subuid /etc/subgid; do
		[ -e "$f" ] || touch "$f"
		if [ "$(grep -c "^$E2E_USER:" "$f" || true)" != 1 ] || ! grep -qx "$want" "$f"; then
			log "setting $f range $want"
			sed -i "/^$E2E_USER:/d" "$f"
			echo "$want" >>"$f"
		fi
	done
}

rootless_env() {
	local uid=$1 home=$2
	echo "HOME=$home XDG_RUNTIME_DIR=/run/user/$uid PATH=/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin:/usr/share/docker.io/contrib"
}

start_rootless() {
	local uid home sock
	uid=$(id -u "$E2E_USER")
	home=$(getent passwd "$E2E_USER" | cut -d: -f6)
	sock="unix:///run/user/$uid/docker.sock"
	mkdir -p "/run/user/$uid"
	chown "$E2E_USER:" "/run/user/$uid"
	chmod 700 "/run/user/$uid"
	if docker_ok "$sock"; then
		log "rootless dockerd already answers on $sock"
		return 0
	fi
	# A stale pid file from a killed daemon would stop dockerd-rootless.sh from starting.
	rm -f "/run/user/$uid/docker.pid"
	log "starting rootless dockerd for $E2E_USER (log $LOGS/dockerd-rootless.log)"
	# shellcheck disable=SC2046
	setsid runuser -u "$E2E_USER" -- env $(rootless_env "$uid" "$home") \
		/usr/share/docker.io/contrib/dockerd-rootless.sh \
		>"$LOGS/dockerd-rootless.log" 2>&1 </dev/null &
	echo $! >"$RUN/dockerd-rootless.started"
	wait_for docker_ok "$sock" ||
		die "rootless dockerd did not answer within 60s" "see $LOGS/dockerd-rootless.log"
}

import_image() {
	if docker -H "unix://$SOURCE_SOCK" image inspect "$IMAGE" >/dev/null 2>&1; then
		return 0
	fi
	log "importing $IMAGE from /bin/busybox"
	local root
	root=$(mktemp -d)
	mkdir -p "$root"/{bin,etc,tmp,var,root,home,proc,sys,dev}
	chmod 1777 "$root/tmp"
	cp /bin/busybox "$root/bin/busybox"
	local a
	for a in $("$root/bin/busybox" --list); do
		[ "$a" = busybox ] && continue
		ln -sf busybox "$root/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
	tar -C "$root" -c . | docker -H "unix://$SOURCE_SOCK" import \
		-c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
	rm -rf "$root"
}

write_env() {
	local uid gid home
	uid=$(id -u "$E2E_USER")
	gid=$(id -g "$E2E_USER")
	home=$(getent passwd "$E2E_USER" | cut -d: -f6)
	mkdir -p "$(dirname "$ENV_FILE")"
	cat >"$ENV_FILE.tmp" <<EOF
UNROOT_E2E_USER=$E2E_USER
UNROOT_E2E_UID=$uid
UNROOT_E2E_GID=$gid
UNROOT_E2E_HOME=$home
UNROOT_E2E_SUBUID_START=$SUBID_START
UNROOT_E2E_SUBUID_COUNT=$SUBID_COUNT
UNROOT_E2E_SUBGID_START=$SUBID_START
UNROOT_E2E_SUBGID_COUNT=$SUBID_COUNT
UNROOT_E2E_SOURCE_HOST=unix://$SOURCE_SOCK
UNROOT_E2E_TARGET_HOST=unix:///run/user/$uid/docker.sock
UNROOT_E2E_IMAGE=$IMAGE
EOF
	mv "$ENV_FILE.tmp" "$ENV_FILE"
}

up() {
	need_root up
	mkdir -p "$STATE" "$RUN" "$LOGS"
	install_packages
	check_kernel
	start_rootful
	ensure_user
	start_rootless
	import_image
	write_env
	log "up: rootful unix://$SOURCE_SOCK, rootless $(grep TARGET_HOST "$ENV_FILE" | cut -d= -f2) (user $E2E_USER); env in $ENV_FILE"
}

# stop_started NAME: kill the process group we started and recorded in $RUN/NAME.started.
stop_started() {
	local f="$RUN/$1.started" pid i
	[ -f "$f" ] || return 0
	pid=$(cat "$f")
	if kill -0 "$pid" 2>/dev/null; then
		log "stopping $1 (pid $pid)"
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 1 60); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.5
		done
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

down() {
	need_root down
	stop_started dockerd-rootless
	stop_started dockerd
	log "down: stopped what 'up' started"
}

status() {
	local uid
	docker_ok "unix://$SOURCE_SOCK" && log "rootful: answers on $SOURCE_SOCK" || log "rootful: not answering"
	if uid=$(id -u "$E2E_USER" 2>/dev/null); then
		docker_ok "unix:///run/user/$uid/docker.sock" && log "rootless: answers (user $E2E_USER)" || log "rootless: not answering"
	else
		log "rootless: user $E2E_USER does not exist"
	fi
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
*)
	echo "usage: $0 up|down|status" >&2
	exit 2
	;;
esac
