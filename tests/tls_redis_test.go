//go:build unix

package tests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRedisOverTLS: two servers share a Redis that only speaks TLS, through
// rediss:// with a password, the Redis's certificate from a private CA that
// the servers trust through SSL_CERT_FILE. A message sent on one server is
// stored (acknowledged) and delivered on both. A server that does not trust
// the CA refuses to start, says why, and never prints the password.
func TestRedisOverTLS(t *testing.T) {
	t.Parallel()
	redisBin := requireTool(t, "redis-server")
	dir := t.TempDir()
	ca, cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "redis.pem"), filepath.Join(dir, "redis.key")
	writeTLSFiles(t, ca, cert, key)
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	rp := startProc(t, dir, "redis-tls", nil, redisBin, "--port", "0", "--tls-port", port, "--bind", "127.0.0.1",
		"--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", ca, "--tls-auth-clients", "no",
		"--requirepass", "s3cret", "--save", "", "--appendonly", "no", "--dir", dir)
	waitFor(t, 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "redis-server with TLS did not listen on %s:\n%s", addr, tailFile(rp.logPath, 20))
	broker := "rediss://:s3cret@localhost:" + port
	prefix := uniquePrefix(t)

	// Without the CA: no start, a clear reason, no password.
	bad := startProc(t, dir, "untrusting", nil, livechatBin, "serve", "--addr", freeAddr(t), "--broker", broker, "--prefix", prefix)
	if !bad.wait(20 * time.Second) {
		t.Fatal("a server that does not trust the Redis's certificate is still running after 20 s")
	}
	out, _ := os.ReadFile(bad.logPath)
	t.Logf("untrusting server: %s", strings.TrimSpace(string(out)))
	if bad.cmd.ProcessState.ExitCode() == 0 || !strings.Contains(string(out), "certificate") || strings.Contains(string(out), "s3cret") {
		t.Errorf("untrusting server: exit %d, output (want the certificate named, not the password):\n%s", bad.cmd.ProcessState.ExitCode(), out)
	}

	var clients []*wsClient
	for _, id := range []string{"1000", "2000"} {
		a := freeAddr(t)
		startProc(t, dir, "server"+id, []string{"APPID=" + id, "SSL_CERT_FILE=" + ca}, livechatBin,
			"serve", "--addr", a, "--broker", broker, "--prefix", prefix, "--log-level", "debug")
		waitFor(t, 20*time.Second, func() bool { return httpStatus("http://"+a+"/readyz") == http.StatusOK },
			"server %s over rediss:// is not ready", id)
		for _, name := range []string{"a" + id, "b" + id} {
			clients = append(clients, mustDial(t, "ws://"+a+"/ws", name))
		}
	}
	joinAll(t, clients, "tls")
	chatRound(t, clients, "tls", "r1")
	for _, c := range clients {
		for _, f := range c.find(func(f frame) bool { return f.Type == "ack" }) {
			if f.Seq == 0 {
				t.Errorf("%s: ack without a seq (not stored): %+v", c.name, f)
			}
		}
	}
}

// writeTLSFiles writes a CA certificate and a certificate and key for
// localhost and 127.0.0.1 that it signed, in PEM.
func writeTLSFiles(t *testing.T, caPath, certPath, keyPath string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "livechat test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for path, block := range map[string]*pem.Block{
		caPath: {Type: "CERTIFICATE", Bytes: caDER}, certPath: {Type: "CERTIFICATE", Bytes: der}, keyPath: {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
