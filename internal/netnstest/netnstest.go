// Package netnstest gives a test hosts of its own on a private network:
// Linux network namespaces (ip netns) joined by veth pairs to a bridge in a
// namespace of its own, so that processes in different namespaces talk over
// a network that the test can cut, one host's link at a time, and restore.
// The test itself reaches into a host with Dial and Listen. Everything is
// removed when the test ends. It needs root and iproute2's ip: without them
// the test is skipped, except under CI=true, where it fails.
package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

// Net is a test's private network: a bridge in a namespace of its own, and
// a namespace per host, each joined to the bridge by a veth pair, with an
// address of 10.200.0.0/24.
type Net struct {
	t      testing.TB
	prefix string // of every namespace's name: unique to the test process and the Net
	hosts  int
	names  []string // of the hosts, without the prefix
}

// seq tells apart the Nets of one test process.
var seq atomic.Int64

// New returns a network with no hosts yet, removed when the test ends.
func New(t testing.TB) *Net {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil || os.Geteuid() != 0 {
		need(t, "root and iproute2's ip (Debian: iproute2)")
	}
	n := &Net{t: t, prefix: fmt.Sprintf("dcnet%d-%d-", os.Getpid(), seq.Add(1))}
	if out, err := exec.Command("ip", "netns", "add", n.bridge()).CombinedOutput(); err != nil {
		need(t, fmt.Sprintf("the right to add network namespaces (ip netns add: %v: %s)", err, strings.TrimSpace(string(out))))
	}
	t.Cleanup(func() { remove(t, n.bridge()) })
	ip(t, "-n", n.bridge(), "link", "add", "br0", "type", "bridge")
	ip(t, "-n", n.bridge(), "link", "set", "br0", "up")
	return n
}

// need skips the test for want, or fails it under CI=true.
func need(t testing.TB, want string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("the network namespace tests need %s under CI", want)
	}
	t.Skipf("the network namespace tests need %s", want)
}

func (n *Net) bridge() string { return n.prefix + "br" }

// Host is a network namespace on the Net, with one interface (eth0) at IP
// and loopback up.
type Host struct {
	// Name is its namespace's name (ip netns exec Name ...).
	Name string
	// IP is its address on the Net.
	IP string

	n    *Net
	port string // the bridge's end of its veth pair
}

// Host adds a host to the Net; name (a few letters) makes failures readable.
func (n *Net) Host(name string) *Host {
	n.t.Helper()
	n.hosts++
	n.names = append(n.names, name)
	h := &Host{Name: n.prefix + name, IP: fmt.Sprintf("10.200.0.%d", n.hosts), n: n, port: fmt.Sprintf("p%d", n.hosts)}
	t := n.t
	ip(t, "netns", "add", h.Name)
	t.Cleanup(func() { remove(t, h.Name) })
	ip(t, "-n", n.bridge(), "link", "add", h.port, "type", "veth", "peer", "name", "eth0", "netns", h.Name)
	ip(t, "-n", n.bridge(), "link", "set", h.port, "master", "br0", "up")
	ip(t, "-n", h.Name, "addr", "add", h.IP+"/24", "dev", "eth0")
	ip(t, "-n", h.Name, "link", "set", "eth0", "up")
	ip(t, "-n", h.Name, "link", "set", "lo", "up")
	return h
}

// Cut cuts the host off the Net: its link is down at the bridge, so what it
// sends is lost, as in a partition (its own interface stays up: its
// connections time out rather than fail at once).
func (h *Host) Cut() { ip(h.n.t, "-n", h.n.bridge(), "link", "set", h.port, "down") }

// Restore puts the host back on the Net, and has every host forget the
// neighbours it failed to reach meanwhile (else "no route to host" until
// the kernel tries them again).
func (h *Host) Restore() {
	ip(h.n.t, "-n", h.n.bridge(), "link", "set", h.port, "up")
	for i := 1; i <= h.n.hosts; i++ {
		ip(h.n.t, "-n", h.n.prefix+h.n.names[i-1], "neigh", "flush", "dev", "eth0")
	}
}

// Command returns a command that runs name with args in the host's
// namespace.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
}

// ip runs ip with args, failing the test if it fails.
func ip(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
}

// remove removes a namespace (and the veth ends in it), in a cleanup: a
// failure is reported, and the other cleanups go on.
func remove(t testing.TB, name string) {
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		t.Errorf("ip netns del %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
}
