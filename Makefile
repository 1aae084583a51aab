# revetl: PGXS build of a C++17 extension.
#
# The version is defined once here and fed to the SQL script names and the
# C++ code (REVETL_VERSION); revetl.control's default_version must match
# (check-version says so). sql/revetl--$(EXTVERSION).sql is the whole schema
# for new installs; every released version has an upgrade script to the next
# (docs/operations.md, "Upgrading", has the rule).

EXTENSION  = revetl
EXTVERSION = 0.2.0
# Released versions, oldest first: each has sql/revetl--<it>--<next>.sql.
RELEASED_VERSIONS = 0.1.0

MODULE_big = revetl

# src/core is organised in folders (common, language, planning, delivery,
# connectors and one folder per connector under connectors/); every .cpp
# below it is part of the module.
CORE_SRCS = $(shell find src/core -name '*.cpp' | sort)
CORE_HDRS = $(shell find src/core -name '*.hpp' | sort)
PG_SRCS   = $(wildcard src/pg/*.cpp)
OBJS      = $(CORE_SRCS:.cpp=.o) $(PG_SRCS:.cpp=.o)

DATA = sql/revetl--$(EXTVERSION).sql $(wildcard sql/revetl--*--*.sql)

# pg_regress tests: sql/<name>.sql against expected/<name>.out, run on a
# temporary instance with revetl preloaded (see scripts/test.sh).
REGRESS = destinations syncs errors runs security sync_language sync_language_errors identifiers object_jsonb destination_types drop_extension
REGRESS_OPTS = --temp-config=test/regress.conf

PG_CONFIG ?= pg_config

# PostgreSQL's own headers are included as system headers so that -Werror
# applies to revetl's code only.
PG_INCLUDEDIR_SERVER := $(shell $(PG_CONFIG) --includedir-server)
PG_CPPFLAGS = -isystem $(PG_INCLUDEDIR_SERVER) -Isrc -DREVETL_VERSION=\"$(EXTVERSION)\"
PG_CXXFLAGS = -std=c++17 -fPIC -Wall -Wextra -Werror -Wno-missing-field-initializers
# libphonenumber parses and validates phone numbers for revetl.e164(); ICU
# (which libphonenumber and PostgreSQL already link) does the Unicode case
# mapping and character classes of the identifier rules (docs/identifiers.md).
SHLIB_LINK  = -lcurl -lphonenumber -licuuc -lstdc++

# JIT bitcode for a C++ module is of no use (no SQL-callable hot path is
# inlined) and would need clang at build time.
override with_llvm = no

# Track header dependencies, so a changed header rebuilds what includes it.
override autodepend = yes

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The pure C++ modules (src/core) include no PostgreSQL header; they are the
# only thing the unit tests link.
# Shared units live in test/unit; each connector's units beside its mock in
# test/connectors/<type>/.
UNIT_SRCS = $(wildcard test/unit/*.cpp) $(wildcard test/connectors/*/*.cpp)
UNIT_HDRS = $(wildcard test/unit/*.hpp)
UNIT_BIN  = test/unit/revetl_unit

# Each unit source and each src/core source is compiled to its own object
# under build/unit (with its header dependencies), so a change to one
# connector recompiles that connector and its tests, not the whole suite,
# and `make -j` spreads the work.
UNIT_OBJDIR   = build/unit
UNIT_OBJS     = $(patsubst %.cpp,$(UNIT_OBJDIR)/%.o,$(UNIT_SRCS) $(CORE_SRCS))
UNIT_CXXFLAGS = -std=c++17 -O1 -g -Wall -Wextra -Werror -Isrc -Itest/unit -DREVETL_VERSION=\"$(EXTVERSION)\" -MMD -MP

$(UNIT_OBJDIR)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(UNIT_CXXFLAGS) -c $< -o $@

$(UNIT_BIN): $(UNIT_OBJS)
	$(CXX) $(UNIT_OBJS) -o $@ -lgtest -lgtest_main -lcurl -lphonenumber -licuuc -pthread

-include $(UNIT_OBJS:.o=.d)

.PHONY: unit
unit: $(UNIT_BIN)
	./$(UNIT_BIN)

FORMATTED = $(CORE_SRCS) $(CORE_HDRS) src/pg/*.cpp src/pg/*.hpp $(UNIT_SRCS) $(UNIT_HDRS)

.PHONY: format-check format
format-check:
	clang-format --dry-run --Werror $(FORMATTED)

# Rewrites every file format-check looks at.
format:
	clang-format -i $(FORMATTED)

EXTRA_CLEAN = $(UNIT_BIN) $(UNIT_OBJDIR) results regression.diffs regression.out tmp_check

.PHONY: print-regress
print-regress:
	@echo $(REGRESS)

# src/core must stay pure C++: no PostgreSQL header, no glue header.
.PHONY: check-boundary
check-boundary:
	@if grep -nE '#include *[<"](postgres|postgres_ext|fmgr|funcapi|miscadmin|pgstat|access/|catalog/|commands/|executor/|nodes/|parser/|storage/|tcop/|utils/|pg/)' $(CORE_SRCS) $(CORE_HDRS); then \
		echo "src/core includes a PostgreSQL or glue header" >&2; exit 1; \
	else echo "boundary ok: src/core includes no PostgreSQL header"; fi

# libFuzzer target for the sync language parser (clang, with ASan/LSan/UBSan).
FUZZ_BIN = test/fuzz/sync_language_fuzzer
FUZZ_SECONDS ?= 60

# The parser's "Perhaps you meant" hints use the shared ClosestMatch (options.cpp).
FUZZ_SRCS = src/core/language/sync_language.cpp src/core/connectors/options.cpp src/core/delivery/host_policy.cpp
$(FUZZ_BIN): test/fuzz/sync_language_fuzzer.cpp $(FUZZ_SRCS) src/core/language/sync_language.hpp src/core/common/error.hpp
	clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Isrc \
		test/fuzz/sync_language_fuzzer.cpp $(FUZZ_SRCS) -o $@

.PHONY: fuzz
fuzz: $(FUZZ_BIN)
	mkdir -p /tmp/revetl-fuzz-corpus
	./$(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -timeout=5 -rss_limit_mb=1024 -max_len=4096 \
		-print_final_stats=1 /tmp/revetl-fuzz-corpus test/fuzz/corpus

# A C++ symbol of revetl's own left undefined in the module would only show
# when PostgreSQL loads it (and then the server does not start).
.PHONY: check-symbols
check-symbols: $(shlib)
	@if nm -C -u $(shlib) | grep -E 'revetl::'; then \
		echo "revetl.so has undefined revetl symbols" >&2; exit 1; \
	else echo "symbols ok: revetl.so defines every revetl symbol it uses"; fi

# The control file, the Makefile and the upgrade scripts agree on versions:
# default_version is EXTVERSION, and each released version has exactly one
# upgrade script, to the version after it.
.PHONY: check-version
check-version:
	@grep -q "^default_version = '$(EXTVERSION)'$$" revetl.control || \
		{ echo "revetl.control: default_version is not $(EXTVERSION)" >&2; exit 1; }
	@versions="$(RELEASED_VERSIONS) $(EXTVERSION)"; set -- $$versions; \
	while [ $$# -gt 1 ]; do \
		[ -f sql/revetl--$$1--$$2.sql ] || { echo "missing sql/revetl--$$1--$$2.sql" >&2; exit 1; }; \
		shift; \
	done; \
	for f in sql/revetl--*--*.sql; do \
		case " $(RELEASED_VERSIONS) " in *" $$(echo $$f | sed 's/.*revetl--\(.*\)--.*/\1/') "*) ;; \
		*) echo "$$f does not start from a released version" >&2; exit 1 ;; esac; \
	done; \
	echo "versions ok: $(RELEASED_VERSIONS) -> $(EXTVERSION)"
	@python3 -c 'import json, sys; m = json.load(open("META.json")); v = "$(EXTVERSION)"; \
		bad = [w for w in (m["version"], m["provides"]["revetl"]["version"]) if w != v]; \
		f = m["provides"]["revetl"]["file"]; \
		sys.exit("META.json: version %s, not %s" % (bad[0], v) if bad else \
		         ("META.json: provides file %s is not sql/revetl--%s.sql" % (f, v) if f != "sql/revetl--%s.sql" % v else 0))'
	@[ "$$(dpkg-parsechangelog -l debian/changelog -S Version 2>/dev/null || sed -n '1s/.*(\(.*\)).*/\1/p' debian/changelog)" = "$(EXTVERSION)" ] || \
		{ echo "debian/changelog: the top entry is not $(EXTVERSION)" >&2; exit 1; }

.PHONY: print-released-versions
print-released-versions:
	@echo $(RELEASED_VERSIONS)
