package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokentap/tokentap/internal/vllmsim"
)

func postStatus(t *testing.T, client *http.Client, url, body string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Keys and tokens never reach the logs, even at trace level and on the
// paths that fail.
func TestSecretsNeverLogged(t *testing.T) {
	sim := newSim(t, vllmsim.Options{APIKey: "VLLM-SECRET-1"})
	sc := start(t, "--upstream", sim.URL, "--in-memory", "--log-level", "trace",
		"--admin-token", "ADMIN-SECRET-2", "--upstream-api-key", "VLLM-SECRET-1",
		"--otlp-endpoint", "http://otlp:OTLP-SECRET-6@127.0.0.1:1", "--otlp-header", "Authorization=Bearer OTLP-SECRET-3")
	chat := `{"model":"` + simModel + `","messages":[{"role":"user","content":"PROMPT-SECRET-5"}]}`
	for _, call := range []struct{ path, body string }{
		{"/rollout/s/attempt/0/v1/chat/completions", chat},
		{"/rollout/s/attempt/0/v1/chat/completions", `{"model":"nope","messages":[]}`},
		{"/rollout/s/attempt/0/v1/chat/completions", `{"messages": [`},
		{"/rollout/bad id/attempt/0/v1/chat/completions", chat},
	} {
		postStatus(t, http.DefaultClient, sc.url+strings.ReplaceAll(call.path, " ", "%20"), call.body, "Authorization", "Bearer AGENT-SECRET-4")
	}
	for _, token := range []string{"", "Bearer wrong", "Bearer ADMIN-SECRET-2"} {
		req, _ := http.NewRequest(http.MethodGet, sc.url+"/api/v1/rollouts", nil)
		if token != "" {
			req.Header.Set("Authorization", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	time.Sleep(600 * time.Millisecond) // an OTLP export attempt or two
	req, _ := http.NewRequest(http.MethodGet, sc.url+"/admin/state", nil)
	req.Header.Set("Authorization", "Bearer ADMIN-SECRET-2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	state, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(state), "127.0.0.1:1") || strings.Contains(string(state), "OTLP-SECRET-6") {
		t.Errorf("/admin/state: %s", state)
	}
	sc.stop(t, syscall.SIGTERM)
	logs := sc.logs.String()
	if !strings.Contains(logs, `"message":"call"`) {
		t.Fatalf("trace logs hold no call: %s", logs)
	}
	for _, secret := range []string{"VLLM-SECRET-1", "ADMIN-SECRET-2", "OTLP-SECRET-3", "AGENT-SECRET-4", "PROMPT-SECRET-5", "OTLP-SECRET-6"} {
		if strings.Contains(logs, secret) {
			t.Errorf("%s is in the logs", secret)
		}
	}
}

// selfSigned writes a certificate and key for 127.0.0.1.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tokentap test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	sim := newSim(t, vllmsim.Options{})
	sc := start(t, "--upstream", sim.URL, "--in-memory", "--tls-cert", certFile, "--tls-key", keyFile)
	url := strings.Replace(sc.url, "http://", "https://", 1)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	status, body := postStatus(t, client, url+"/rollout/tls/attempt/0/v1/chat/completions", `{"model":"`+simModel+`","messages":[{"role":"user","content":"hi"}]}`)
	if status != 200 || !strings.Contains(body, `"choices"`) {
		t.Errorf("over TLS: %d %s", status, body)
	}
	// Go's TLS server answers a plain-HTTP request with a bare 400.
	if resp, err := http.Get(sc.url + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP on the TLS listener: %d", resp.StatusCode)
		}
	}
}

// At --max-disk, new calls are refused with 507 (never answered and then
// lost), the metric and /readyz say so.
func TestMaxDisk(t *testing.T) {
	sim := newSim(t, vllmsim.Options{})
	sc := start(t, "--upstream", sim.URL, "--data", t.TempDir(), "--max-disk", "1KiB")
	status, body := postStatus(t, http.DefaultClient, sc.url+"/rollout/d/attempt/0/v1/chat/completions", `{"model":"`+simModel+`","messages":[]}`)
	if status != 507 || !strings.Contains(body, `"code":507`) || !strings.Contains(body, "max-disk") {
		t.Errorf("%d %s", status, body)
	}
	if got := getJSON(t, sc.url+"/readyz", nil); got != 503 {
		t.Errorf("/readyz: %d", got)
	}
	resp, _ := http.Get(sc.url + "/metrics")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "tokentap_store_full 1") || !strings.Contains(string(b), `tokentap_refused_requests_total{reason="disk_full"} 1`) {
		t.Errorf("metrics:\n%s", b)
	}
}

// A filesystem that fills up: calls are refused while it is full, and
// flow again when space returns, with everything recorded before intact.
func TestDiskFullRecovers(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=192m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s)", err, out)
	}
	// Registered before start, so it runs after the sidecar has stopped.
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	sim := newSim(t, vllmsim.Options{})
	sc := start(t, "--upstream", sim.URL, "--data", filepath.Join(mnt, "data"))
	call := func() int {
		status, _ := postStatus(t, http.DefaultClient, sc.url+"/rollout/full/attempt/0/v1/chat/completions", `{"model":"`+simModel+`","messages":[{"role":"user","content":"hi"}]}`)
		return status
	}
	if got := call(); got != 200 {
		t.Fatalf("before: %d", got)
	}
	// Fill the filesystem to under tokentap's 64 MiB reserve.
	var st syscall.Statfs_t
	syscall.Statfs(mnt, &st)
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, int64(st.Bavail)*int64(st.Bsize)-32<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return call() == 507 })
	os.Remove(filler)
	waitFor(t, func() bool { return call() == 200 })
	sc.stop(t, syscall.SIGTERM)
	sc = start(t, "--upstream", sim.URL, "--data", filepath.Join(mnt, "data"))
	var view callsView
	getJSON(t, sc.url+"/api/v1/rollouts/full/attempts/0/calls", &view)
	if len(view.Calls) < 2 {
		t.Errorf("%d calls recorded", len(view.Calls))
	}
	for _, c := range view.Calls {
		if c.Status != "ok" || !c.TokenIDsValid {
			t.Errorf("call %d: %s", c.SequenceID, c.Status)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 20s")
		}
	}
}

// A client that never finishes its headers (slowloris) loses its
// connection after --header-timeout instead of holding it forever.
func TestSlowHeadersDropped(t *testing.T) {
	sim := newSim(t, vllmsim.Options{})
	sc := start(t, "--upstream", sim.URL, "--in-memory", "--header-timeout", "300ms")
	conn, err := net.Dial("tcp", strings.TrimPrefix(sc.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /rollout/slow/attempt/0/v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
	conn.SetReadDeadline(time.Now().Add(20 * time.Second)) // a hang guard, not a timing assertion
	_, err = io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the connection was still open after 20s")
	}
	// The sidecar still serves.
	if status, body := postStatus(t, http.DefaultClient, sc.url+"/rollout/slow/attempt/0/v1/chat/completions", `{"model":"`+simModel+`","messages":[{"role":"user","content":"hi"}]}`); status != 200 {
		t.Errorf("after: %d %s", status, body)
	}
}
