# Sourced by the install-*.sh scripts: apt_install_backported PKG... installs PKG from
# bookworm-backports on Debian bookworm (adding that source once), from the release elsewhere.
apt_install_backported() {
  . /etc/os-release
  export DEBIAN_FRONTEND=noninteractive
  if [ "${VERSION_CODENAME:-}" = bookworm ]; then
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        > /etc/apt/sources.list.d/bookworm-backports.sources
    fi
    apt-get update -qq
    apt-get install -y -qq -t bookworm-backports "$@" >/dev/null
  else
    apt-get update -qq
    apt-get install -y -qq "$@" >/dev/null
  fi
}
