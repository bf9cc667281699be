# unroot: make build | test | lint | demo | bench — see README.md.
GO          ?= go
BIN         := bin/unroot
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
PKGS        := ./...
# Fuzz targets run briefly under 'make fuzz' (CI runs them a few seconds each).
FUZZTIME    ?= 5s

.PHONY: build test test-unit e2e lint fmt testenv testenv-down fuzz clean demo

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/unroot

# test: unit and end-to-end tests; brings the two-daemon rig up first. The
# end-to-end package runs after the others, on its own: its tests snapshot
# host files and daemon state that a concurrent package could disturb.
test: testenv
	$(GO) test -count=1 $(shell $(GO) list ./... | grep -v /e2e)
	$(GO) test -count=1 -timeout 45m ./e2e/...

# test-unit: what needs no daemon (end-to-end tests skip, or fail under CI=true).
test-unit:
	$(GO) test -count=1 $(shell $(GO) list ./... | grep -v /e2e)

e2e: testenv
	$(GO) test -count=1 -timeout 45m -v ./e2e/...

lint:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-ed:"; echo "$$out"; exit 1; fi
	$(GO) run $(STATICCHECK) $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

testenv:
	bash scripts/testenv.sh up

testenv-down:
	bash scripts/testenv.sh down

# demo: bring up the rig, create a sample stack on the rootful daemon, migrate it.
demo:
	bash scripts/demo.sh

fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

clean:
	rm -rf bin

# install: the binary, its man pages, and a symlink that makes it the docker
# CLI plugin 'docker unroot'. /usr/libexec/docker/cli-plugins is searched by
# both the 20.10 and the 28.x docker CLI. DESTDIR stages a package.
PREFIX     ?= /usr/local
PLUGINDIR  ?= /usr/libexec/docker/cli-plugins
MANDIR     ?= $(PREFIX)/share/man/man1
.PHONY: install uninstall docs
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/unroot
	$(BIN) gen-man $(DESTDIR)$(MANDIR)
	install -d $(DESTDIR)$(PLUGINDIR)
	ln -sfn $(PREFIX)/bin/unroot $(DESTDIR)$(PLUGINDIR)/docker-unroot

uninstall:
	rm -f $(DESTDIR)$(PLUGINDIR)/docker-unroot $(DESTDIR)$(PREFIX)/bin/unroot $(DESTDIR)$(MANDIR)/unroot.1 $(DESTDIR)$(MANDIR)/unroot-*.1

# docs: man pages into docs/man (generated, not committed).
docs: build
	rm -rf docs/man
	$(BIN) gen-man docs/man

# bench: side-by-side benchmarks against cp -a, rsync, chown -R and
# docker save | docker load (docs/benchmarks.md); brings the rig up for P4/P5.
# Not part of 'make test'. BENCHFLAGS e.g. "-files 20000 -pairs 7 -big -json".
BENCHFLAGS ?=
.PHONY: bench
bench: build testenv
	$(GO) build -o bin/bench ./bench
	bin/bench $(BENCHFLAGS)
