package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokentap/tokentap/internal/vllmsim"
)

// collector is a running OpenTelemetry Collector (scripts/otelcol.sh) with
// an OTLP receiver and the debug exporter printing every span in detail.
type collector struct {
	cmd       *exec.Cmd
	grpc      string
	http      string
	out       string
	done      chan error
	configDir string
}

// collectorBinary finds the collector CI builds; without it the test says
// how to get one.
func collectorBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("OTELCOL_BIN")
	if bin == "" {
		t.Skip("set OTELCOL_BIN to the collector built by scripts/otelcol.sh (.ci/run does)")
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startCollector(t *testing.T, bin, grpcAddr, httpAddr, dir, name string) *collector {
	t.Helper()
	config := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc: {endpoint: %q}
      http: {endpoint: %q}
processors:
  batch: {}
exporters:
  debug: {verbosity: detailed}
service:
  telemetry: {metrics: {level: none}}
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [debug]}
`, grpcAddr, httpAddr)
	cfgPath := filepath.Join(dir, "otelcol.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name+".log")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &collector{cmd: cmd, grpc: grpcAddr, http: httpAddr, out: out, done: make(chan error, 1), configDir: dir}
	go func() { c.done <- cmd.Wait(); f.Close() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-c.done
		}
	})
	// Ready when the HTTP receiver accepts connections.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if conn, err := net.Dial("tcp", httpAddr); err == nil {
			conn.Close()
			return c
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(out)
			t.Fatalf("collector did not start:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *collector) stop(t *testing.T) {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// received reads the collector's debug output: how often each span id
// arrived, and which spans carried prompt and response token IDs.
func received(t *testing.T, logs ...string) (count map[string]int, withIDs map[string]bool) {
	t.Helper()
	count, withIDs = map[string]int{}, map[string]bool{}
	for _, path := range logs {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		var id string
		var prompt, response bool
		flush := func() {
			if id != "" {
				count[id]++
				withIDs[id] = withIDs[id] || (prompt && response)
			}
			id, prompt, response = "", false, false
		}
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "Span #"):
				flush()
			case strings.HasPrefix(line, "    ID             : "):
				id = strings.TrimPrefix(line, "    ID             : ")
			case strings.Contains(line, "-> prompt_token_ids: Slice([") && len(line) > 40:
				prompt = true
			case strings.Contains(line, "-> response_token_ids: Slice([") && len(line) > 40:
				response = true
			}
		}
		flush()
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return count, withIDs
}

// drive makes n calls per rollout of names, half streamed, some with 30k
// prompt tokens so that a batch of them exceeds the collector's 4 MiB gRPC
// limit unless tokentap bounds batches by bytes.
func drive(t *testing.T, sc *sidecar, rollouts []string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for _, rid := range rollouts {
		wg.Go(func() {
			for i := range n {
				var body string
				if i%2 == 1 {
					ids := make([]string, 30000)
					for j := range ids {
						ids[j] = fmt.Sprint(1000 + (j*7919)%140000)
					}
					body = `{"model":"` + simModel + `","prompt":[` + strings.Join(ids, ",") + `],"max_tokens":16}`
				} else {
					body = fmt.Sprintf(`{"model":"%s","messages":[{"role":"user","content":"call %d"}],"stream":%v}`, simModel, i, i%2 == 0)
				}
				path := "/v1/chat/completions"
				if strings.Contains(body, `"prompt"`) {
					path = "/v1/completions"
				}
				resp, err := http.Post(sc.url+"/rollout/"+rid+"/attempt/0"+path, "application/json", strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body) // the whole answer: a stream closed early is a cancelled call
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("call: %d", resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
}

// recordedSpans lists the span ids of every call the sidecar recorded.
func recordedSpans(t *testing.T, sc *sidecar, rollouts []string) []string {
	t.Helper()
	var ids []string
	for _, rid := range rollouts {
		var view struct {
			Calls []struct {
				SpanID string `json:"span_id"`
			} `json:"calls"`
		}
		getJSON(t, sc.url+"/api/v1/rollouts/"+rid+"/attempts/0/calls", &view)
		for _, c := range view.Calls {
			ids = append(ids, c.SpanID)
		}
	}
	return ids
}

type otlpState struct {
	OTLP struct {
		Backlog   uint64 `json:"backlog"`
		SentSpans uint64 `json:"sent_spans"`
		LastError string `json:"last_error"`
	} `json:"otlp"`
}

func waitDrained(t *testing.T, sc *sidecar) otlpState {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var st otlpState
		getJSON(t, sc.url+"/admin/state", &st)
		if st.OTLP.Backlog == 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog never drained: %+v", st.OTLP)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tokentap pushes every span, with its token IDs, to a real collector over
// OTLP/HTTP and OTLP/gRPC.
func TestPushToCollector(t *testing.T) {
	bin := collectorBinary(t)
	for _, proto := range []string{"http", "grpc"} {
		t.Run(proto, func(t *testing.T) {
			dir := t.TempDir()
			col := startCollector(t, bin, freePort(t), freePort(t), dir, "run")
			endpoint := "http://" + col.http
			if proto == "grpc" {
				endpoint = "grpc://" + col.grpc
			}
			sim := newSim(t, vllmsim.Options{})
			sc := start(t, "--upstream", sim.URL, "--in-memory", "--otlp-endpoint", endpoint)
			rollouts := []string{"p1", "p2", "p3", "p4"}
			drive(t, sc, rollouts, 10)
			st := waitDrained(t, sc)
			col.stop(t)

			count, withIDs := received(t, col.out)
			want := recordedSpans(t, sc, rollouts)
			if len(want) != 40 || st.OTLP.SentSpans != 40 {
				t.Fatalf("recorded %d calls, sent %d", len(want), st.OTLP.SentSpans)
			}
			for _, id := range want {
				if count[id] != 1 || !withIDs[id] {
					t.Errorf("span %s arrived %d times, with token IDs: %v", id, count[id], withIDs[id])
				}
			}
		})
	}
}

// A collector that goes away costs no span: tokentap keeps serving agents,
// reports the backlog, and delivers everything, once, when it returns.
func TestCollectorOutage(t *testing.T) {
	bin := collectorBinary(t)
	dir := t.TempDir()
	grpcAddr, httpAddr := freePort(t), freePort(t)
	col := startCollector(t, bin, grpcAddr, httpAddr, dir, "before")
	sim := newSim(t, vllmsim.Options{})
	sc := start(t, "--upstream", sim.URL, "--data", t.TempDir(), "--otlp-endpoint", "http://"+httpAddr)
	rollouts := []string{"o1", "o2", "o3"}
	drive(t, sc, rollouts[:1], 10)
	waitDrained(t, sc)
	col.stop(t)

	// Down: agents are served, the backlog grows and says why.
	drive(t, sc, rollouts[1:], 10)
	var st otlpState
	deadline := time.Now().Add(30 * time.Second)
	for getJSON(t, sc.url+"/admin/state", &st); st.OTLP.LastError == "" && time.Now().Before(deadline); getJSON(t, sc.url+"/admin/state", &st) {
		time.Sleep(50 * time.Millisecond)
	}
	if st.OTLP.Backlog != 20 || st.OTLP.LastError == "" {
		t.Errorf("while the collector is down: %+v", st.OTLP)
	}

	col = startCollector(t, bin, grpcAddr, httpAddr, dir, "after")
	waitDrained(t, sc)
	col.stop(t)
	count, withIDs := received(t, filepath.Join(dir, "before.log"), filepath.Join(dir, "after.log"))
	want := recordedSpans(t, sc, rollouts)
	if len(want) != 30 {
		t.Fatalf("recorded %d calls", len(want))
	}
	for _, id := range want {
		if count[id] != 1 || !withIDs[id] {
			t.Errorf("span %s arrived %d times (with IDs: %v)", id, count[id], withIDs[id])
		}
	}
}
