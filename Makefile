# Handoff — the commands a new user types. Each first installs what is missing
# (scripts/bootstrap), so a fresh Debian machine needs nothing done by hand.
SHELL := /bin/bash
SWIFT ?= swift
FUZZ_SECONDS ?= 30
FUZZ_BUILD := .build-fuzz

.PHONY: all deps deps-build generate check-generated check-format build build-release install test test-swift test-python test-soak fuzz fuzz-long durability soak run bench bench-postgres bench-sessions clean

all: build

# What building needs (run, build, install, bench) and what testing needs
# too (PostgreSQL, Python packages): scripts/bootstrap says why apart.
deps-build:
	@scripts/bootstrap --build

deps:
	@scripts/bootstrap

generate: deps
	scripts/generate

check-generated: deps
	scripts/generate --check

# The committed .swift-format, with the toolchain's swift-format (scripts/format rewrites).
check-format:
	scripts/format --check

build: deps-build
	$(SWIFT) build

build-release: deps-build
	$(SWIFT) build -c release

# Everything CI proves: generated code current, Swift suites, Python suites,
# and a bounded fuzzing run of the decoders.
test: deps check-generated check-format test-swift test-python test-soak fuzz
	@scripts/test-summary .build/test-logs

# In parallel: what failed about one parallel run in eight was the client's
# keepalive, which took a PONG late by 100 ms for a dead server
# (docs/ARCHITECTURE.md, "make test").
test-swift: deps
	$(SWIFT) build --build-tests
	@mkdir -p .build/test-logs
	set -o pipefail; scripts/with-postgres $(SWIFT) test --skip-build --parallel --disable-xctest 2>&1 | tee .build/test-logs/swift.log

# The client tests start a real handoffd from .build/debug.
test-python: deps
	$(SWIFT) build
	@mkdir -p .build/test-logs
	set -o pipefail; scripts/with-postgres python3 -m pytest -q clients/python/tests 2>&1 | tee .build/test-logs/python.log

# A one-minute soak of the debug build: the seed's mix at half the rate it
# reached just before; fails on a hung or failed call, growing memory or
# descriptors, a ticket a watcher missed or a chain that does not verify.
test-soak: deps
	$(SWIFT) build
	@mkdir -p .build/test-logs
	set -o pipefail; BIN=.build/debug SOAK_SECONDS=60 INTERVAL=15 MEASURE_SECONDS=10 scripts/soak 2>&1 | tee .build/test-logs/soak.log

# The ten-minute soak of the release build (figures in docs/BENCHMARKS.md).
soak: deps
	$(SWIFT) build -c release --product handoffd
	$(SWIFT) build -c release --product handoff
	$(SWIFT) build -c release --product handoff-bench
	scripts/soak

# handoffd SIGKILLed under concurrent writes and restarted, three times (also part of make test).
durability: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-xctest --filter DurabilityTests

# libFuzzer over the envelope and message decoders (Tests/Fuzz), FUZZ_SECONDS long.
fuzz: deps
	$(SWIFT) build -c release --sanitize=fuzzer -Xswiftc -parse-as-library \
	    --package-path Tests/Fuzz --scratch-path $(FUZZ_BUILD)
	scripts/fuzz $(FUZZ_BUILD)/release/HandoffProtoFuzz $(FUZZ_SECONDS)

# The longer documented mode: an hour, keeping the corpus in .fuzz-corpus/.
fuzz-long:
	$(MAKE) fuzz FUZZ_SECONDS=3600 FUZZ_KEEP=1

# handoff-bench beside the bare C floor of this machine, with ratios (release
# builds). The floor is the project's own: scripts/floor/floor builds its C
# programs with gcc into .build/floor. Figures and history: docs/BENCHMARKS.md.
bench: deps
	$(SWIFT) build -c release --product handoffd
	$(SWIFT) build -c release --product handoff
	$(SWIFT) build -c release --product handoff-bench
	scripts/bench

# Issue 23's figures: pgbench and two handoffd nodes on one throwaway
# PostgreSQL cluster, in one run (docs/BENCHMARKS.md).
bench-postgres: deps
	$(SWIFT) build -c release --product handoffd
	$(SWIFT) build -c release --product handoff
	$(SWIFT) build -c release --product handoff-bench
	scripts/bench-postgres

# The figures that need a big store: memory with 100,000 sessions touched, and
# GetContext with 10 sessions in the store against 1,000,000 (BIG=N to change).
bench-sessions: deps-build
	$(SWIFT) build -c release --product handoffd
	$(SWIFT) build -c release --product handoff
	$(SWIFT) build -c release --product handoff-bench
	scripts/bench-sessions

# Starts handoffd in the foreground with its embedded defaults (data in .handoff/,
# development certificates made on first start). Ctrl-C stops it gracefully.
# LISTEN=host:port and DATA=dir choose another address or data directory.
LISTEN ?= 127.0.0.1:7443
DATA ?= .handoff
run: deps-build
	$(SWIFT) build -c release --product handoffd
	$(SWIFT) build -c release --product handoff
	@test -f "$(DATA)/certs/server.pem" || .build/release/handoff certs init "$(DATA)/certs"
	.build/release/handoffd --data "$(DATA)" --listen "$(LISTEN)"

# Builds handoff and handoffd (release) and copies them to $(PREFIX)/bin, so the
# README's bare `handoff` works. PREFIX=$$HOME/.local needs no root; DESTDIR
# stages for a package.
PREFIX ?= /usr/local
install: deps-build
	$(SWIFT) build -c release --product handoffd
	$(SWIFT) build -c release --product handoff
	install -d "$(DESTDIR)$(PREFIX)/bin"
	install -m 0755 .build/release/handoff .build/release/handoffd "$(DESTDIR)$(PREFIX)/bin/"
	@case ":$$PATH:" in *":$(PREFIX)/bin:"*) ;; *) echo "note: $(PREFIX)/bin is not on your PATH; add it: export PATH=\"$(PREFIX)/bin:\$$PATH\"" ;; esac

clean:
	rm -rf .build $(FUZZ_BUILD)
