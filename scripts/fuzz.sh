#!/usr/bin/env bash
# fuzz.sh DURATION: run every native fuzz target in the module for DURATION each.
set -euo pipefail
dur=${1:-5s}
cd "$(dirname "$0")/.."
fail=0
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "fuzz: $pkg $target ($dur)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$dur" "$pkg" || fail=1
	done
done
exit $fail
