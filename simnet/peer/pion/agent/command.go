package main

// CallCommand is the peer protocol's call command (simnet/peer/protocol.py, CallCommand):
// the fields this peer reads; others are ignored, as the protocol's version rule allows.
type CallCommand struct {
	Role               string      `json:"role"`
	SignalingKind      string      `json:"signaling_kind"`
	SignalingURLBase   string      `json:"signaling_url_base"`
	Room               string      `json:"room"`
	Peer               string      `json:"peer"`
	RemotePeer         string      `json:"remote_peer"`
	ICEServers         []iceServer `json:"ice_servers"`
	ICETransportPolicy string      `json:"ice_transport_policy"`
	CAFile             *string     `json:"ca_file"`
	DataBytes          int         `json:"data_bytes"`
	DataChunkBytes     int         `json:"data_chunk_bytes"`
	RTTProbes          int         `json:"rtt_probes"`
	Media              mediaSpec   `json:"media"`
	DurationS          float64     `json:"duration_s"`
	HoldS              float64     `json:"hold_s"`
	Liveness           *liveness   `json:"liveness"`
	Timeouts           timeouts    `json:"timeouts"`
}

type iceServer struct {
	URLs       []string `json:"urls"`
	Username   *string  `json:"username"`
	Credential *string  `json:"credential"`
}

type mediaSpec struct {
	Audio  bool           `json:"audio"`
	Video  map[string]any `json:"video"`
	Coding string         `json:"coding"`
}

type liveness struct {
	CheckIntervalS     float64 `json:"check_interval_s"`
	DisconnectedAfterS float64 `json:"disconnected_after_s"`
}

type timeouts struct {
	GatheringS   float64 `json:"gathering_s"`
	SignalingS   float64 `json:"signaling_s"`
	ICES         float64 `json:"ice_s"`
	DTLSS        float64 `json:"dtls_s"`
	DatachannelS float64 `json:"datachannel_s"`
	MediaS       float64 `json:"media_s"`
}

// defaultCommand has the protocol's defaults (simnet.callspec), which a command's fields replace.
func defaultCommand() *CallCommand {
	return &CallCommand{
		SignalingKind:      "ws",
		ICETransportPolicy: "all",
		DataBytes:          1_000_000,
		DataChunkBytes:     16_384,
		RTTProbes:          10,
		Liveness:           &liveness{CheckIntervalS: 0.5, DisconnectedAfterS: 2.5},
		Timeouts:           timeouts{5, 5, 10, 5, 10, 10},
	}
}

// The bounded ending (simnet.callspec): the wait for the peer's "done", each close.
const (
	doneWaitS     = 5.0
	closeTimeoutS = 5.0
)
