# dsock build. `make` builds build/dsock; `make SAN=1` builds the AddressSanitizer +
# UndefinedBehaviorSanitizer variant into build-san/. Every .c under src/ is compiled,
# so a new module needs no Makefile change. llhttp's C sources come from Debian's
# node-llhttp package and protobuf-c code is generated from protos/ at build time.

SAN ?= 0
ifeq ($(SAN),1)
  BUILD ?= build-san
  SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
  OPT = -O1 -g
else
  BUILD ?= build
  SANFLAGS =
  OPT = -O2 -g
endif

CC ?= cc
LLHTTP_DIR ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

WARN = -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CPPFLAGS += -D_GNU_SOURCE -Isrc -I$(BUILD)/gen -I$(LLHTTP_INC) \
            -DDSOCK_VERSION='"$(VERSION)"' -DDSOCK_REVISION='"$(GIT_REV)"'
CFLAGS += -std=c11 $(OPT) $(WARN) $(SANFLAGS) -MMD -MP
LDFLAGS += $(SANFLAGS)
LDLIBS += -luv -lhiredis -lcrypto -lprotobuf-c -lcjson -lyaml -lz -lm -lpthread

SRCS := $(shell find src -name '*.c' | sort)
OBJS := $(SRCS:%.c=$(BUILD)/%.o)
LIB_OBJS := $(filter-out $(BUILD)/src/main.o,$(OBJS))
LLHTTP_OBJS := $(BUILD)/llhttp/llhttp.o $(BUILD)/llhttp/api.o $(BUILD)/llhttp/http.o
PROTO_SRCS := $(wildcard protos/*.proto)
PROTO_GEN := $(PROTO_SRCS:protos/%.proto=$(BUILD)/gen/%.pb-c.c)
PROTO_OBJS := $(PROTO_GEN:%.c=%.o)

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

FUZZ_SRCS := $(wildcard fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:fuzz/%.c=build-fuzz/%)

.PHONY: all unit unit-build fuzz bench clean
.SECONDARY:
all: $(BUILD)/dsock

$(BUILD)/dsock: $(OBJS) $(LLHTTP_OBJS) $(PROTO_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: protos/%.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=protos --c_out=$(BUILD)/gen $<

$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	$(CC) $(CPPFLAGS) -std=c11 $(OPT) $(SANFLAGS) -c -o $@ $<

# Everything under src/ may include the generated protobuf header.
$(OBJS): | $(PROTO_GEN)

$(BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# Third-party sources are compiled as they ship, without our -Werror set, but in
# llhttp's strict mode: CR must be followed by LF everywhere (request line, headers,
# chunk sizes, and the CRLF after chunk data, which the loose mode skips unchecked),
# the URL takes only visible ASCII, a header name no trailing space, and no byte may
# follow a Connection: close message (never fed: the parser stops at each message's
# end). docs/api.md, "HTTP behaviour". Objects depend on the Makefile so that a
# change of these flags rebuilds them.
LLHTTP_FLAGS = -DLLHTTP_STRICT_MODE=1
$(BUILD)/llhttp/%.o: $(LLHTTP_DIR)/%.c Makefile
	@mkdir -p $(dir $@)
	$(CC) -I$(LLHTTP_INC) $(LLHTTP_FLAGS) -std=c11 $(OPT) $(SANFLAGS) -w -c -o $@ $<

unit-build: $(UNIT_BINS)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t --jobs 2; done

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS) $(LLHTTP_OBJS) $(PROTO_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-missing-field-initializers $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LLHTTP_OBJS) $(PROTO_OBJS) $(LDLIBS) -lcriterion

# libFuzzer targets, built with clang and both sanitizers. Each links the whole
# library so a target can reach any engine.
fuzz: $(FUZZ_BINS)
FUZZ_CFLAGS = -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -Isrc -Ibuild-fuzz/gen -I$(LLHTTP_INC) -DDSOCK_VERSION='"fuzz"' -DDSOCK_REVISION='"fuzz"'
FUZZ_LIB_SRCS := $(filter-out src/main.c,$(SRCS))
build-fuzz/%: fuzz/%.c $(FUZZ_LIB_SRCS) build-fuzz/gen/dsock.pb-c.c
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) $(LLHTTP_FLAGS) -o $@ $< $(FUZZ_LIB_SRCS) $(LLHTTP_DIR)/*.c build-fuzz/gen/*.pb-c.c -luv -lhiredis -lcrypto -lprotobuf-c -lcjson -lyaml -lz -lm -lpthread
build-fuzz/gen/%.pb-c.c: protos/%.proto
	@mkdir -p build-fuzz/gen
	protoc-c --proto_path=protos --c_out=build-fuzz/gen $<

# The client-side benchmark (docs/benchmark.md): build/bench/dsock-bench.
bench:
	$(MAKE) -C bench BUILD=$(abspath $(BUILD))

clean:
	rm -rf build build-san build-fuzz

-include $(OBJS:.o=.d)
