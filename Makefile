# Flotilla — run `make` (or `make help`) for the list of targets.
GO        ?= go
PKGS      ?= ./...
BIN       := $(CURDIR)/.bin
# staticcheck 2026.2.2, which understands Go 1.26; `go run pkg@version`
# fetches and caches it, so nothing has to be installed first.
STATICCHECK_VERSION := v0.8.2
PROTOC_GEN_GO_VERSION := $(shell $(GO) list -m -f '{{.Version}}' google.golang.org/protobuf)

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: test
test: lint proto-check ## the whole suite: vet, gofmt, staticcheck, go.mod tidy, generated code current, tests, race tests
	$(GO) test -count=1 -timeout 20m $(PKGS)
	$(GO) test -count=1 -race -short -timeout 20m $(PKGS)

.PHONY: race
race: ## all tests under the race detector
	$(GO) test -count=1 -race -timeout 30m $(PKGS)

.PHONY: bench
bench: ## quick side-by-side benchmark vs etcd raft and hashicorp/raft, every row and the bars (make bench ARGS='-clients 64')
	cd bench && $(GO) run . $(ARGS)

.PHONY: bench-full
bench-full: ## the published benchmark: median of 3 alternating runs, 5 s windows; rewrites bench/RESULTS.md, bench/results.svg and README's table
	cd bench && $(GO) run . -runs 3 -warmup 2s -window 5s -publish $(ARGS)

.PHONY: bench-log
bench-log: ## memory and restart time vs entries ever written: N entries of 128 B, 3 node processes on Pebble and gRPC (make bench-log N=1M ARGS='-pprof /tmp/heaps'); default N=10M
	$(GO) run ./tools/logbench -n $(or $(N),10M) $(ARGS)

.PHONY: bench-groups
bench-groups: ## many groups per process: 1, 16, 256, 1,000 groups on 3 actors.Hosts (one process, inmem, Pebble with fsync in temp dirs), 128 B: ops/s, p50/p99, fsyncs/s, ops per fsync, CPU; first 256 clients in total per cell, then 8 clients per group (make bench-groups ARGS='-groups 1,256 -window 10s')
	cd bench && $(GO) build -o $(CURDIR)/.cache/bench-groups ./groups
	@echo "== the same load in every cell: 256 clients in total (1,000 at 1,000 groups)"
	.cache/bench-groups $(ARGS)
	@echo "== the load grows with the groups: 8 clients per group"
	.cache/bench-groups -per-group 8 $(ARGS)

.PHONY: bench-idle
bench-idle: ## CPU of idle groups: 1,000 idle 3-node groups in one process on inmem, quiescence off and on, CPU (getrusage) over 10 s (make bench-idle GROUPS=100)
	$(GO) test -count=1 -timeout 30m ./actors/ -run '^$$' -bench BenchmarkIdleGroups -benchtime 1x -idle.groups=$(or $(GROUPS),1000) $(ARGS)

.PHONY: bench-snapshot
bench-snapshot: ## a new node catches up a 1 GiB on-disk state through chunked InstallSnapshot with two dropped connections; bytes re-sent, peak RSS (make bench-snapshot BYTES=4294967296)
	$(GO) test -count=1 -timeout 60m ./actors/ -run TestLargeSnapshotCatchUp -snapshot.bytes=$(or $(BYTES),1073741824) -v

.PHONY: test-hosts
test-hosts: ## many Raft groups per process: 3 hosts (actors.Host) x GROUPS groups (default 1,000) on one in-memory network and crashable Pebbles: elect, commit, power loss, groups added and removed; prints fsyncs and groups per fsync
	$(GO) test -count=1 -timeout 30m ./actors/ -run TestHostManyGroups -host.groups=$(or $(GROUPS),1000) -v

.PHONY: bench-hosts
bench-hosts: ## many groups per process: 3 hosts (actors.Host) in one process on the real disk (fsync on), 1/16/256/1,000 groups, a client per group, 128 B: ops/s, fsyncs/s per host, ops per fsync
	$(GO) test -count=1 -timeout 30m ./actors/ -run '^$$' -bench BenchmarkHostGroups -benchtime $(or $(N),20000)x

.PHONY: sim
sim: ## long simulator sweep: make sim SEEDS=20000
	$(GO) test -count=1 -timeout 120m ./actors/raft/sim/ -run TestSweep -sim.seeds=$(or $(SEEDS),20000) -v

.PHONY: chaos
chaos: ## long randomized configuration-change sweep (safety and liveness): make chaos SEEDS=20000 START=0
	$(GO) test -count=1 -timeout 60m ./actors/raft/ -run TestRandomConfigChangesAreSafe -chaos.seeds=$(or $(SEEDS),20000) -chaos.start=$(or $(START),0)

.PHONY: sim-shell
sim-shell: ## whole-system simulator sweep (node actors, Pebble, faults): make sim-shell SEEDS=2000
	$(GO) test -count=1 -timeout 180m ./actors/simtest/ -run TestSweep -simshell.seeds=$(or $(SEEDS),2000) -v $(ARGS)

.PHONY: sim-hosts
sim-hosts: ## the simulator on multi-group hosts: make sim-hosts SEEDS=100 GROUPS=4
	$(GO) test -count=1 -timeout 180m ./actors/simtest/ -run TestHostSweep -simshell.seeds=$(or $(SEEDS),100) -simshell.groups=$(or $(GROUPS),4) -v $(ARGS)

.PHONY: demo
demo: ## run the banking demo: 3 server processes, concurrent clients, leader killed and restarted
	$(GO) run ./examples/banking demo

.PHONY: demo-membership
demo-membership: ## banking demo of run-time membership: a 4th server added (learner, then voter), the leader removed
	$(GO) run ./examples/banking demo-membership

.PHONY: demo-topics
demo-topics: ## run the topics demo: 3 broker processes, producers and consumers, a 4th joins, an owner SIGKILLed; checks
	$(GO) run ./examples/topics demo

.PHONY: verify
verify: ## long linearizability check of the banking example
	$(GO) run ./examples/banking verify -duration $(or $(DURATION),2m) -kills $(or $(KILLS),6)

.PHONY: lint
lint: ## go vet, a gofmt check, staticcheck, and go.mod/go.sum tidy (here and in bench/)
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)
	$(GO) mod tidy -diff
	cd bench && $(GO) mod tidy -diff

$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

.PHONY: proto
proto: $(BIN)/protoc-gen-go ## regenerate the Go code of every .proto file (needs protoc)
	@for f in $$(git ls-files '*.proto'; ls messages/*.proto examples/*/*.proto 2>/dev/null) ; do echo $$f; done | sort -u | \
	  while read f; do PATH=$(BIN):$$PATH protoc --proto_path=. --go_out=. --go_opt=paths=source_relative $$f || exit 1; done

.PHONY: proto-check
proto-check: ## fail when committed generated code differs from `make proto` (skipped without protoc)
	@if command -v protoc >/dev/null; then \
	  $(MAKE) -s proto && git diff --exit-code -- '*.pb.go' || { echo "generated code is stale: run make proto and commit"; exit 1; }; \
	else echo "protoc not installed: skipping proto-check"; fi

.PHONY: crash
crash: ## longer crash-safety sweep: make crash SEEDS=2000
	$(GO) test -count=1 -timeout 60m ./persistence/pebblestore/ -run 'TestConformance/(PowerLoss|IOError)|TestTransactionalApplyCrash' -persist.crashseeds=$(or $(SEEDS),2000)
	$(GO) test -count=1 -timeout 60m ./actors/raft/sim/ -run TestPebbleCrashSweep -sim.crashseeds=$(or $(SEEDS),2000) -v

.PHONY: jaeger
jaeger: ## build Jaeger v2 from its Go module into .cache/jaeger (reused when present)
	tools/jaeger/build.sh

.PHONY: jaeger-screenshots
jaeger-screenshots: ## regenerate docs/jaeger-*.png: the e2e scenario's traces in the real Jaeger UI (needs `make jaeger` and chromium)
	mkdir -p docs
	FLOTILLA_REQUIRE_JAEGER=1 FLOTILLA_SCREENSHOTS=$(CURDIR)/docs $(GO) test -count=1 -run '^TestTracesInJaegerUI$$' ./tracing/e2e/ -args -screenshots

# Fuzz by count (Nx): duration-based fuzzing can fail with "context deadline exceeded"
# in Go's fuzz coordinator (golang/go#75804), which made CI flaky.
FUZZTIME ?= 500000x

.PHONY: fuzz
fuzz: ## run every fuzz target FUZZTIME times (default 500000x, about 30 s each; a count, not a duration)
	@for f in $$(git ls-files '*_test.go'); do \
	  for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do echo "./$$(dirname $$f) $$t"; done; \
	done | sort -u | while read pkg t; do \
	  echo "== $$pkg $$t"; \
	  $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done
