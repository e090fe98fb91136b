# Sourced by .ci/run before pytest (also runnable: `source .ci/setup-chromium.sh`).
# The web page's browser tests (tests/test_web_*.py) drive Debian's headless Chromium through
# Selenium and Debian's chromedriver: nothing is downloaded from a browser vendor (Selenium
# Manager is never asked, the driver's path is given). Installs the two packages when missing and
# exports AVATARGEN_CHROMIUM and AVATARGEN_CHROMEDRIVER, read by tests/web_browser.py.

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    _chromium_sudo=""
    [ "$(id -u)" = "0" ] || _chromium_sudo="sudo"
    $_chromium_sudo apt-get update
    $_chromium_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver
fi

AVATARGEN_CHROMIUM="$(command -v chromium)"
AVATARGEN_CHROMEDRIVER="$(command -v chromedriver)"
export AVATARGEN_CHROMIUM AVATARGEN_CHROMEDRIVER
# Selenium must never fetch a driver or a browser of its own.
export SE_OFFLINE=true
