#!/usr/bin/env bash
# demo.sh: 'make demo'. On a throwaway machine: bring up the two daemons, create a
# small stack on the rootful one, and migrate it to the rootless one with unroot.
#
#   demo-net   a user-defined network
#   demo-web   busybox httpd on 127.0.0.1:80, serving a bind-mounted host directory
#   demo-db    a "database" running as uid 999 that appends to a named volume, demo-db
#
# Then: unroot check, unroot migrate --dry-run, unroot migrate --all --yes, the services
# answering on their new ports, the ownership seen inside the rootless containers, and
# unroot status. Running it again first removes what the previous run created.
set -euo pipefail

cd "$(dirname "$0")/.."
ENV_FILE=${UNROOT_E2E_ENV:-/var/lib/unroot-e2e/env}
DEMO_DIR=/srv/unroot-demo
STATE_DIR=/var/lib/unroot-demo
BIN=bin/unroot

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
# http_get PORT: GET / from 127.0.0.1:PORT with curl, or bash's /dev/tcp without it.
http_get() {
	if command -v curl >/dev/null; then
		curl -fsS "http://127.0.0.1:$1/"
		return
	fi
	exec 3<>"/dev/tcp/127.0.0.1/$1"
	printf 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
	sed '1,/^\r$/d' <&3
	exec 3<&-
}
show() { printf '$ %s\n' "$*"; "$@"; }

step "bring up the rig (rootful dockerd + rootless dockerd for an unprivileged user)"
bash scripts/testenv.sh up
# shellcheck disable=SC1090
. "$ENV_FILE"
USER_NAME=$UNROOT_E2E_USER
SRC="docker -H $UNROOT_E2E_SOURCE_HOST"
TGT="docker -H $UNROOT_E2E_TARGET_HOST"
IMAGE=$UNROOT_E2E_IMAGE

step "build unroot"
go build -trimpath -o "$BIN" ./cmd/unroot
UNROOT=("$BIN" --user "$USER_NAME" --source-host "$UNROOT_E2E_SOURCE_HOST" --target-host "$UNROOT_E2E_TARGET_HOST" --state-dir "$STATE_DIR")

step "remove what an earlier demo left"
for d in "$SRC" "$TGT"; do
	$d rm -f demo-web demo-db >/dev/null 2>&1 || true
	$d volume rm demo-db >/dev/null 2>&1 || true
	$d network rm demo-net >/dev/null 2>&1 || true
	$d rmi unroot/commit:demo-web unroot/commit:demo-db >/dev/null 2>&1 || true
done
rm -rf "$DEMO_DIR" "$STATE_DIR"

step "create the sample stack on the rootful daemon"
mkdir -p "$DEMO_DIR/www"
cat >"$DEMO_DIR/www/index.html" <<'HTML'
<h1>hello from demo-web</h1>
HTML
chown -R 0:0 "$DEMO_DIR/www"
show $SRC network create demo-net
show $SRC volume create demo-db
$SRC run --rm -v demo-db:/var/lib/db "$IMAGE" sh -c \
	'echo "id,name" > /var/lib/db/table.csv && echo "1,alice" >> /var/lib/db/table.csv && chown -R 999:999 /var/lib/db && chmod 700 /var/lib/db'
show $SRC run -d --name demo-web --network demo-net --restart unless-stopped --init \
	-p 127.0.0.1:80:80 -v "$DEMO_DIR/www:/www:ro" "$IMAGE" httpd -f -p 80 -h /www
show $SRC run -d --name demo-db --network demo-net --network-alias db --user 999:999 --restart unless-stopped --init \
	-v demo-db:/var/lib/db "$IMAGE" sh -c 'while :; do date +%s >> /var/lib/db/journal; sleep 1; done'
sleep 1
show http_get 80
show $SRC exec demo-db ls -ln /var/lib/db

step "unroot check: is the user ready for rootless Docker?"
show "${UNROOT[@]}" check || echo "(check reported problems; the demo goes on)"

# --all takes every container of the source daemon; on a machine that runs
# other containers too, the demo names its own instead.
SELECT=(--all)
others=$($SRC ps -a --format '{{.Names}}' | grep -vx -e demo-web -e demo-db || true)
if [ -n "$others" ]; then
	echo "the source daemon also runs: $(echo "$others" | tr '\n' ' ')— migrating only the demo's containers"
	SELECT=(demo-web demo-db)
fi

step "unroot migrate --dry-run: the plan, nothing changes"
show "${UNROOT[@]}" migrate --dry-run "${SELECT[@]}"

step "unroot migrate --yes: rolling cutover, one service at a time"
show "${UNROOT[@]}" migrate --yes "${SELECT[@]}"

step "the services answer on their new ports (80 → 8080)"
show http_get 8080
show $TGT exec demo-web sh -c 'nslookup db >/dev/null && echo "demo-web resolves db on demo-net"'

step "ownership as the rootless containers see it (unchanged) and as the host sees it (shifted)"
show $TGT exec demo-db ls -ln /var/lib/db
show $TGT exec demo-web ls -ln /www
show ls -ln "$DEMO_DIR/www"
show $SRC ps -a --filter name=demo- --format 'table {{.Names}}\t{{.Status}}'
show $TGT ps --filter name=demo- --format 'table {{.Names}}\t{{.Status}}\t{{.Ports}}'

step "unroot status"
show "${UNROOT[@]}" status

printf '\nundo it all with: %s rollback --all --purge\n' "${UNROOT[*]}"
