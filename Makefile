# The README's two commands. Each sets itself up on a fresh Debian machine with Python 3.11.
#   make run   - create .venv, install, start the server with its embedded defaults
#   make test  - also install the real peers the tests use (apt), then run the whole suite

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := sip-tester baresip kamailio kamailio-tls-modules nginx libnginx-mod-rtmp ffmpeg sox libsox-fmt-all chromium chromium-driver firefox-esr linphone-cli libbcg729-0 libspeex1 libopus0 iproute2 dnsmasq-base iptables conntrack redis-server libnss3-tools
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
TESTS ?= tests

.PHONY: run test install test-peers clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	# Rebuild the twistd plugin cache after install (twisted/plugins/dropin.cache).
	$(BIN)/python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@echo "wcs-twisted: WebSocket ws://127.0.0.1:8080  REST http://127.0.0.1:8081/rest-api/  pages http://127.0.0.1:8081/  health http://127.0.0.1:8081/health"
	$(BIN)/twistd --reactor=asyncio --nodaemon --pidfile= wcs --config etc/wcs.properties

test-peers:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing test peers:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@# npm (for the official Web SDK test) may come with a nodejs that is not Debian's: only
	@# ask apt for it when there is no npm at all.
	@command -v npm >/dev/null || { $(SUDO) apt-get update -qq; DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends npm >/dev/null; }

test: $(STAMP) test-peers
	$(BIN)/python -m twisted.trial --reactor=asyncio $(TESTS)

clean:
	rm -rf $(VENV) _trial_temp* twisted/plugins/dropin.cache *.egg-info
