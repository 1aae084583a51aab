# revetl: PGXS build of a C++17 extension.
#
# The version is defined once here and fed to the control file check, the SQL
# script name and the C++ code (REVETL_VERSION).

EXTENSION  = revetl
EXTVERSION = 0.1.0

MODULE_big = revetl

CORE_SRCS = $(wildcard src/core/*.cpp)
PG_SRCS   = $(wildcard src/pg/*.cpp)
OBJS      = $(CORE_SRCS:.cpp=.o) $(PG_SRCS:.cpp=.o)

DATA = sql/revetl--$(EXTVERSION).sql

# pg_regress tests: sql/<name>.sql against expected/<name>.out, run on a
# temporary instance with revetl preloaded (see scripts/test.sh).
REGRESS = destinations syncs errors runs security
REGRESS_OPTS = --temp-config=test/regress.conf

PG_CONFIG ?= pg_config

# PostgreSQL's own headers are included as system headers so that -Werror
# applies to revetl's code only.
PG_INCLUDEDIR_SERVER := $(shell $(PG_CONFIG) --includedir-server)
PG_CPPFLAGS = -isystem $(PG_INCLUDEDIR_SERVER) -Isrc -DREVETL_VERSION=\"$(EXTVERSION)\"
PG_CXXFLAGS = -std=c++17 -fPIC -Wall -Wextra -Werror -Wno-missing-field-initializers
SHLIB_LINK  = -lcurl -lstdc++

# JIT bitcode for a C++ module is of no use (no SQL-callable hot path is
# inlined) and would need clang at build time.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The pure C++ modules (src/core) include no PostgreSQL header; they are the
# only thing the unit tests link.
UNIT_SRCS = $(wildcard test/unit/*.cpp)
UNIT_BIN  = test/unit/revetl_unit

$(UNIT_BIN): $(UNIT_SRCS) $(CORE_SRCS) $(wildcard src/core/*.hpp)
	$(CXX) -std=c++17 -O1 -g -Wall -Wextra -Werror -Isrc $(UNIT_SRCS) $(CORE_SRCS) \
		-DREVETL_VERSION=\"$(EXTVERSION)\" -o $@ -lgtest -lgtest_main -lcurl -pthread

.PHONY: unit
unit: $(UNIT_BIN)
	./$(UNIT_BIN)

.PHONY: format-check
format-check:
	clang-format --dry-run --Werror src/core/*.cpp src/core/*.hpp src/pg/*.cpp src/pg/*.hpp test/unit/*.cpp

EXTRA_CLEAN = $(UNIT_BIN) results regression.diffs regression.out tmp_check

.PHONY: print-regress
print-regress:
	@echo $(REGRESS)
