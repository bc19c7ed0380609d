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

## build: the livechat binary in bin/
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/livechat ./cmd/livechat

## run: one node with the in-process broker on :8080
run:
	$(GO) run ./cmd/livechat serve --broker memory://

## deps: install and start what the tests need (apt packages, golangci-lint, Redis)
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
	$(GO) test -run '^$$' -bench . -benchtime 100x ./pkg/...

fmt:
	gofmt -w $$(git ls-files '*.go')

## cluster: the reference topology without Docker: 4 servers (8081-8084), HAProxy :8080, nginx :1007
.PHONY: cluster cluster-stop cluster-status
cluster:
	./scripts/cluster.sh start

## cluster-stop: stop everything `make cluster` started
cluster-stop:
	./scripts/cluster.sh stop

cluster-status:
	./scripts/cluster.sh status
