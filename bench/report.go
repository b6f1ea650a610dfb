package main

import (
	"fmt"
	"io"
	"sort"
)

// report is the whole run, as written to the JSON file.
type report struct {
	Machine   map[string]any   `json:"machine"`
	Config    map[string]any   `json:"config"`
	Scenarios []scenarioResult `json:"scenarios"`
}

type scenarioResult struct {
	Scenario scenario           `json:"scenario"`
	Rounds   []measurement      `json:"rounds"`
	Medians  map[string]summary `json:"medians"`
	// Ratios are tokentap's figures over the reverse proxy's.
	RPSRatio       float64  `json:"tokentap_over_reverse_proxy_rps"`
	AddedP50OverRP float64  `json:"tokentap_added_p50_ms_over_reverse_proxy"`
	Storage        *storage `json:"tokentap_storage,omitempty"`
}

// summary is the median of a path's rounds.
type summary struct {
	RPS         float64 `json:"rps"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	AddedP50ms  float64 `json:"added_p50_ms_vs_direct"`
	CPUPer1k    float64 `json:"proxy_cpu_seconds_per_1k_calls"`
	AllocsPer   float64 `json:"proxy_allocs_per_call"`
	PeakRSSMiB  float64 `json:"proxy_peak_rss_mib"`
	PeakAnonMiB float64 `json:"proxy_peak_anon_rss_mib"`
	Errors      int     `json:"errors"`
	Calls       int     `json:"calls"`
	UpCPUPer1k  float64 `json:"upstream_cpu_seconds_per_1k_calls"`
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

func (r *scenarioResult) summarize(paths []*path) {
	r.Medians = map[string]summary{}
	for _, p := range paths {
		var rps, p50, p99, cpu, allocs, rss, anon, up []float64
		s := summary{}
		for _, m := range r.Rounds {
			if m.Path != p.name {
				continue
			}
			rps, p50, p99 = append(rps, m.RPS), append(p50, m.P50ms), append(p99, m.P99ms)
			cpu, allocs, up = append(cpu, m.CPUPer1k), append(allocs, m.AllocsPer), append(up, m.UpCPUPer1k)
			rss = append(rss, float64(m.PeakRSSBytes)/(1<<20))
			anon = append(anon, float64(m.PeakAnonBytes)/(1<<20))
			s.Errors += m.Errors
			s.Calls += m.Calls
		}
		s.RPS, s.P50ms, s.P99ms = median(rps), median(p50), median(p99)
		s.CPUPer1k, s.AllocsPer, s.PeakRSSMiB, s.PeakAnonMiB, s.UpCPUPer1k = median(cpu), median(allocs), median(rss), median(anon), median(up)
		r.Medians[p.name] = s
	}
	direct := r.Medians["direct"]
	for name, s := range r.Medians {
		s.AddedP50ms = s.P50ms - direct.P50ms
		r.Medians[name] = s
	}
	tt, rp := r.Medians["tokentap"], r.Medians["reverse-proxy"]
	if rp.RPS > 0 {
		r.RPSRatio = tt.RPS / rp.RPS
	}
	r.AddedP50OverRP = tt.AddedP50ms - rp.AddedP50ms
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\nmachine: %v cores, %v, %v %v\n", r.Machine["cores"], r.Machine["cpu"], r.Machine["go"], r.Machine["os"])
	fmt.Fprintf(w, "medians of %v interleaved rounds of %v per path; cpu s/1k, allocs/call and RSS are the proxy process's\n", r.Config["rounds"], r.Config["duration"])
	for _, s := range r.Scenarios {
		fmt.Fprintf(w, "\n%s\n", s.Scenario.Name)
		fmt.Fprintf(w, "  %-14s %9s %9s %9s %9s %9s %12s %10s %10s %7s\n", "path", "rps", "p50 ms", "p99 ms", "+p50 ms", "cpu s/1k", "allocs/call", "peak anon", "peak RSS", "errors")
		for _, name := range []string{"direct", "reverse-proxy", "tokentap"} {
			m := s.Medians[name]
			rss, anon, cpu, allocs := "-", "-", "-", "-"
			if name != "direct" {
				rss = fmt.Sprintf("%.0f MiB", m.PeakRSSMiB)
				anon = fmt.Sprintf("%.0f MiB", m.PeakAnonMiB)
				cpu = fmt.Sprintf("%.3f", m.CPUPer1k)
				allocs = fmt.Sprintf("%.0f", m.AllocsPer)
			}
			fmt.Fprintf(w, "  %-14s %9.0f %9.2f %9.2f %9.2f %9s %12s %10s %10s %7d\n", name, m.RPS, m.P50ms, m.P99ms, m.AddedP50ms, cpu, allocs, anon, rss, m.Errors)
		}
		fmt.Fprintf(w, "  tokentap / reverse proxy: %.2f× the RPS, %+.2f ms added p50\n", s.RPSRatio, s.AddedP50OverRP)
		if s.Storage != nil {
			s.Storage.print(w)
		}
	}
}
