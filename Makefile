# daolinet: the two commands a newcomer needs are `make demo` and `make test`.
# Both run `make setup` first, which installs everything on a bare machine (as root).

VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# The pure packages (no I/O; tests/unit/test_layering.py): held to mypy --strict.
PURE := src/daolinet/model src/daolinet/decide src/daolinet/flows src/daolinet/pipeline src/daolinet/ofp

.PHONY: uncompile setup demo test unit integration lint clean bench bench-first-packet bench-route-setup \
	bench-dataplane bench-idle-cost bench-time-to-network bench-scale bench-plots bench-hotpath bench-route-setup-tls \
	bench-ui-map bench-footprint bench-move-gap bench-dns-latency compile

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/daolinet lab demo

test: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy src/daolinet
	$(VENV)/bin/mypy --strict $(PURE)
	$(PY) -m pytest $(PYTEST_ARGS)

unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: setup
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

# bench-plots last: it draws docs/img/*.png from the latest JSON of each bench.
bench: bench-hotpath bench-route-setup bench-first-packet bench-dataplane bench-idle-cost bench-scale \
	bench-time-to-network bench-ui-map bench-move-gap bench-footprint bench-dns-latency bench-plots

bench-hotpath: setup
	$(PY) bench/hotpath.py

bench-route-setup: setup
	$(PY) bench/route_setup.py

# The same, insecure and TLS in one run (3 rounds each, 60,000 routes in throughput mode) and their ratio.
bench-route-setup-tls: setup
	$(PY) bench/route_setup.py --compare --routes 60000

bench-first-packet: setup
	$(PY) bench/first_packet.py $(FIRST_PACKET_ARGS)  # e.g. FIRST_PACKET_ARGS=--ipv6

bench-dns-latency: setup
	$(PY) bench/dns_latency.py

bench-dataplane: setup
	$(PY) bench/dataplane.py

bench-idle-cost: setup
	$(PY) bench/idle_cost.py

bench-time-to-network: setup
	$(PY) bench/time_to_network.py

bench-scale: setup
	$(PY) bench/scale.py

# The live map with 1,000 containers and 2,000 routes in Debian's chromium (Playwright).
bench-ui-map: setup
	$(PY) bench/ui_map.py

# RSS and idle CPU of every daemon on an idle lab (3 hosts, 33 containers each).
bench-footprint: setup
	$(PY) bench/footprint.py

# A live TCP stream while its container moves: the largest gap, and whether TCP hit a retransmission timeout.
bench-move-gap: setup
	$(PY) bench/move_gap.py

bench-plots: setup
	$(PY) bench/plots.py

# Optional: the hot path's pure modules compiled by mypyc (needs gcc and Python's headers),
# ~10-30 % less CPU in those steps.  Without it the same modules run as Python; `make clean`
# (or `make uncompile`) removes the compiled ones, and tests/unit/test_compiled.py fails
# while a compiled module is older than its source.
# (in this order: with flows/wire.py before flows/route_wire.py mypyc cannot type wire's cached functions)
COMPILED := daolinet/decide/packet.py daolinet/flows/route_wire.py daolinet/decide/direct.py \
	daolinet/flows/wire.py daolinet/flows/respond.py

compile: setup
	cd src && ../$(VENV)/bin/mypyc --ignore-missing-imports $(COMPILED) >/dev/null
	rm -rf src/build

uncompile:
	rm -f src/*__mypyc*.so $(patsubst %.py,src/%.*.so,$(COMPILED))

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy src/daolinet
	$(VENV)/bin/mypy --strict $(PURE)

clean: uncompile
	rm -rf $(VENV) build src/build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
