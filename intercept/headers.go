package intercept

import (
	"net/http"
	"net/textproto"
	"strings"
)

// hopHeaders are the hop-by-hop fields of RFC 9110 §7.6.1 (and the
// non-standard ones proxies meet, as httputil.ReverseProxy strips them):
// they describe one connection, never the message, so a proxy must not
// pass them on in either direction.
var hopHeaders = [...]string{
	"Connection",
	"Proxy-Connection", // non-standard, still sent by curl
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// removeHopByHop deletes the hop-by-hop fields of h: those its Connection
// fields name, and the fixed set.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// stripRequestHopByHop readies an agent's request headers for the upstream
// hop, as httputil.ReverseProxy does: the hop-by-hop fields go, except
// that "TE: trailers" (the agent can take trailers) and a protocol upgrade
// (Connection: Upgrade with its Upgrade) are asked for again on the new hop.
// It runs before goproxy's own clean-up, which drops Connection (and with it
// the list of what it named) but leaves the rest.
func stripRequestHopByHop(h http.Header) {
	trailers := headerHasToken(h["Te"], "trailers")
	upgrade := ""
	if headerHasToken(h["Connection"], "upgrade") {
		upgrade = h.Get("Upgrade")
	}
	removeHopByHop(h)
	if trailers {
		h.Set("Te", "trailers")
	}
	if upgrade != "" {
		h.Set("Connection", "Upgrade")
		h.Set("Upgrade", upgrade)
	}
}

// stripResponseHopByHop removes the upstream's hop-by-hop fields from its
// answer before the agent's hop. A 101 keeps them: they are the switch.
func stripResponseHopByHop(resp *http.Response) {
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return
	}
	removeHopByHop(resp.Header)
}

// headerHasToken reports whether a comma-separated list field holds token
// (case-insensitive).
func headerHasToken(values []string, token string) bool {
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(textproto.TrimString(t), token) {
				return true
			}
		}
	}
	return false
}
