# Herald: the two set-up commands are `make demo` and `make test`.
# Both install missing Debian packages (as root; otherwise they print the
# apt-get line), configure with CMake and build.

BUILD    ?= build
JOBS     ?= 2
WERROR   ?= $(if $(CI),ON,OFF)
CMAKE_FLAGS ?=

.PHONY: all deps configure build test unit integration demo install clean format

all: build

deps:
	@bash deploy/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -DHERALD_WERROR=$(WERROR) $(CMAKE_FLAGS) >/dev/null

build: configure
	@MAKEFLAGS= cmake --build $(BUILD) -j $(JOBS) | grep -v -e "^gmake" -e "Entering directory" -e "Leaving directory" || true
	@test -x $(BUILD)/bin/herald-broker -a -x $(BUILD)/bin/herald -a -x $(BUILD)/bin/herald-worker

test: build
	@cd $(BUILD) && ctest --output-on-failure --timeout 300 $(CTEST_FLAGS)

unit: build
	@cd $(BUILD) && ctest --output-on-failure -L unit

integration: build
	@cd $(BUILD) && ctest --output-on-failure -L integration

demo: build
	@bash deploy/demo.sh $(BUILD)/bin

install: build
	@cmake --install $(BUILD)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	@rm -rf $(BUILD)
