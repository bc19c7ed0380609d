# livechat developer commands. `make check` is the whole test suite (what CI runs).
GO       ?= go
GOBIN    := $(shell $(GO) env GOPATH)/bin
LINT     := $(shell command -v golangci-lint 2>/dev/null || echo $(GOBIN)/golangci-lint)
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
LDFLAGS  := -s -w -X github.com/livechat/livechat/pkg/cli.version=$(VERSION) -X github.com/livechat/livechat/pkg/cli.commit=$(COMMIT)
TESTFLAGS ?= -race -count=1 -timeout 20m

.PHONY: all build run deps test lint check bench fmt

all: build

# The binary depends on every source file and on the version it embeds, so
# `make build`, `make run` and `make cluster` rebuild it only when one of those
# changed (and all three build it with the same flags).
SOURCES  := $(shell find cmd pkg web -type f \( -name '*.go' -o -name '*.js' -o -name '*.html' -o -name '*.css' \) -not -name '*_test.go' -not -path 'web/test/*' 2>/dev/null) go.mod go.sum

## build: the livechat binary in bin/ (a minute or two the first time, then only when sources change)
build: bin/livechat

bin/livechat: $(SOURCES) bin/.version
	@echo "building bin/livechat $(VERSION) (the first build takes a minute or two; later ones are quick)"
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/livechat ./cmd/livechat

# bin/.version holds the version and commit the binary embeds; it is rewritten
# (so the binary is rebuilt) only when they change. Done as make reads this
# file, so that `make -n` tells the truth too.
$(shell mkdir -p bin && (echo '$(VERSION) $(COMMIT)' | cmp -s - bin/.version || echo '$(VERSION) $(COMMIT)' > bin/.version))

## run: one node on :8080, its data in ./livechat-data (builds bin/livechat first when needed)
run: bin/livechat
	bin/livechat serve

## deps: install and start what the tests need (apt packages, golangci-lint, Redis, NATS)
deps:
	./scripts/deps.sh

## test: the whole test suite with the race detector, against real services
test: deps
	$(GO) test $(TESTFLAGS) ./...

## lint: golangci-lint with .golangci.yml, and go vet of the Windows and macOS builds
lint: deps
	$(LINT) run ./...
	GOOS=windows $(GO) vet ./...
	GOOS=darwin $(GO) vet ./...

## check: test, lint and a short run of the hot-path benchmarks (what CI runs)
check: test lint
	$(GO) test -run '^$$' -bench . -benchtime 100x ./pkg/... ./internal/...

fmt:
	gofmt -w $$(git ls-files '*.go')

## cluster: the reference topology without Docker: 4 servers (8081-8084), HAProxy :8080, nginx :1007
.PHONY: cluster cluster-stop cluster-status
cluster: bin/livechat
	LIVECHAT_BIN=bin/livechat ./scripts/cluster.sh start

## cluster-stop: stop everything `make cluster` started
cluster-stop:
	./scripts/cluster.sh stop

cluster-status:
	./scripts/cluster.sh status
