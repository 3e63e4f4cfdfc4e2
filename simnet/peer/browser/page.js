// simnet's browser peers (Chromium, Firefox): one WebRTC call per simnetCall(spec), driven by the
// agent over the browser's own protocol (CDP, WebDriver BiDi).
//
// The page is a small web app: it speaks simnet's WebSocket signaling (ws://HOST:PORT/ws/ROOM/PEER,
// JSON objects relayed to the other peer of the room), trickles its ICE candidates, and runs the
// same data-channel application protocol as simnet/peer/aiortc/call/datachannel.py (label
// "simnet", ordered; JSON text ping/pong, bulk/bulk-done, summary, done; binary bulk chunks under
// the same flow control), so it can call an aiortc peer as well as another browser peer. Phases
// and their timeouts are the aiortc call's (simnet/peer/aiortc/call/); a failure is a classified
// error (simnet.callspec.ERROR_KINDS).
//
// Events go to the agent through window.simnetEvent (a CDP binding, a BiDi channel), one JSON
// string each, stamped with the page's clock `pt` (performance.timeOrigin + performance.now(), ms); the agent maps them
// to the shared clock (time.monotonic()). The data-channel protocol carries shared-clock seconds
// ("bulk" t0, "bulk-done" t_last, as aiortc does), so the agent hands the page its clock offset.
// The call ends with a "report" event (what the result needs: error, figures, raw getStats()
// snapshots) and then "closed" (the peer connection and signaling closed).
//
// ICE restart (docs/peer-protocol.md, "ICE restart"): simnetIceRestart() makes the offerer send an
// offer with new ICE credentials; the answerer answers any later offer. Both report
// ice_restart_started / ice_restart_connected (or ice_restart_failed) and media_resumed.
'use strict';

const CHANNEL_LABEL = 'simnet';
const BUFFER_HIGH_BYTES = 1 << 20; // pause above this much queued (call/datachannel.py's values)
const BUFFER_LOW_BYTES = 256 << 10; // resume below this
const FIRST_FRAME_POLL_MS = 20; // getStats() polling for the first frames (their resolution)

function now() {
  return performance.timeOrigin + performance.now();
}

function emit(event, fields) {
  window.simnetEvent(JSON.stringify({event, pt: now(), ...(fields || {})}));
}

class CallFailed extends Error {
  constructor(kind, detail) {
    super(`${kind}: ${detail}`);
    this.kind = kind;
    this.detail = detail;
  }
}

function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  let done = false;
  return {
    promise,
    get done() {
      return done;
    },
    resolve(v) {
      if (!done) {
        done = true;
        resolve(v);
      }
    },
    reject(e) {
      if (!done) {
        done = true;
        reject(e);
      }
    },
  };
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// `promise`, or CallFailed("timeout:<phase>") after timeoutS seconds.
async function bounded(phase, promise, timeoutS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new CallFailed(`timeout:${phase}`, `${phase} not done within ${timeoutS} s`)),
      timeoutS * 1000,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function wsUrl(base, room, peer) {
  const url = new URL(base);
  const scheme = url.protocol === 'https:' || url.protocol === 'wss:' ? 'wss:' : 'ws:';
  const path = url.pathname.replace(/\/+$/, '');
  return `${scheme}//${url.host}${path}/ws/${encodeURIComponent(room)}/${encodeURIComponent(peer)}`;
}

function candidateType(candidate) {
  const match = / typ (\S+)/.exec(candidate || '');
  return match ? match[1] : null;
}

// --- signaling ---------------------------------------------------------------------------------

class Signaling {
  constructor(url, onMessage) {
    this.url = url;
    this.onMessage = onMessage;
    this.ws = null;
    this.ended = deferred(); // rejects with the failure when the channel breaks
    this.ended.promise.catch(() => {});
  }

  open(timeoutS) {
    const opened = deferred();
    const ws = (this.ws = new WebSocket(this.url));
    const timer = setTimeout(() => {
      opened.reject(new CallFailed('timeout:signaling', `timeout: no connection to ${this.url}`));
      ws.close();
    }, timeoutS * 1000);
    ws.onopen = () => {
      clearTimeout(timer);
      opened.resolve();
    };
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (message && typeof message === 'object' && !Array.isArray(message)) {
        this.onMessage(message);
      }
    };
    ws.onclose = (event) => {
      clearTimeout(timer);
      const reason = event.reason ? `: ${event.reason}` : '';
      const failure = opened.done
        ? new CallFailed('signaling', `closed: signaling WebSocket closed (code ${event.code}${reason})`)
        : new CallFailed('signaling', `connect: cannot open ${this.url} (code ${event.code}${reason})`);
      opened.reject(failure);
      this.ended.reject(failure);
    };
    return opened.promise;
  }

  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      throw new CallFailed('signaling', 'closed: the signaling WebSocket is not open');
    }
    this.ws.send(JSON.stringify(message));
  }

  close() {
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
    }
  }
}

// --- one call ----------------------------------------------------------------------------------

class Call {
  constructor(spec) {
    this.cmd = spec.cmd;
    this.offsetMs = spec.clock_offset_ms; // shared clock = page clock + offset
    this.doneWaitS = spec.done_wait_s;
    this.closeTimeoutS = spec.close_timeout_s;
    this.pc = null;
    this.signaling = null;
    this.phaseT = {};
    this.connected = false;
    this.remoteSet = false;
    this.pendingRemote = []; // candidates that arrived before the remote description
    this.localCandidates = []; // {candidate, url, relay_protocol, pt}
    this.remoteCandidates = []; // candidate strings, trickled or inside the remote SDP
    this.remoteEnded = false;
    this.candidateErrors = []; // icecandidateerror events
    this.gatheringComplete = deferred();
    this.descriptionSent = false;
    this.unsent = []; // local candidates gathered before our description went out
    this.description = deferred(); // the peer's offer / answer
    this.iceDone = deferred();
    this.dtlsDone = deferred();
    this.noPath = deferred(); // rejects when no candidate pair can ever form
    this.noPath.promise.catch(() => {});
    this.dcOpen = deferred();
    this.dc = null;
    this.peerDone = deferred();
    this.pongs = new Map();
    this.bulkDone = deferred();
    this.summary = deferred();
    this.rxExpected = null;
    this.rxT0 = 0;
    this.rxBytes = 0;
    this.dcRttMs = null;
    this.dcBytes = null;
    this.dcGoodputMbps = null;
    this.stream = null;
    this.firstFrames = new Set(); // "kind:direction"
    this.mediaReady = deferred();
    this.mediaStats = null; // [startSnapshot, endSnapshot]
    this.connectedStats = null; // a snapshot taken when DTLS connected (selected pair fallback)
    this.openStats = null; // a snapshot taken before the "done" exchange, both sides still open
    this.pairWatched = false;
    this.pairChanges = 0;
    this.mediaWindow = null; // [start pt, end pt]
    this.disconnects = 0;
    this.disconnectedMs = 0;
    this.disconnectedAt = null;
    this.gatherStarted = null;
    this.dtlsWatched = new Set();
    this.restarts = 0; // ICE restarts made (offerer) or answered (answerer)
    this.restarting = false;
  }

  shared() {
    return (now() + this.offsetMs) / 1000; // seconds on the shared (monotonic) clock
  }

  event(name, fields, key) {
    this.eventAt(name, now(), fields, key);
  }

  // An event that happened at page time `pt` (e.g. a message's arrival), reported now.
  eventAt(name, pt, fields, key) {
    const k = key || name;
    if (!(k in this.phaseT)) this.phaseT[k] = pt;
    window.simnetEvent(JSON.stringify({event: name, pt, key: k, ...(fields || {})}));
  }

  async run() {
    let failure = null;
    try {
      await this.steps();
    } catch (e) {
      failure = e instanceof CallFailed ? e : new CallFailed('agent', `${e && e.name}: ${e && e.message}`);
      await this.hold();
    }
    this.countDisconnected(now());
    const report = await this.report(failure);
    emit('report', report);
    const closing = now();
    this.event('closing');
    await this.close();
    emit('closed', {close_ms: now() - closing});
  }

  async steps() {
    const cmd = this.cmd;
    this.event('call_started', {role: cmd.role, room: cmd.room});
    if (cmd.signaling_kind !== 'ws') {
      throw new CallFailed('signaling', 'a browser peer speaks WebSocket signaling only');
    }
    this.pc = new RTCPeerConnection({
      iceServers: cmd.ice_servers.map((s) => {
        const server = {urls: s.urls};
        if (s.username != null) server.username = s.username;
        if (s.credential != null) server.credential = s.credential;
        return server;
      }),
      iceTransportPolicy: cmd.ice_transport_policy,
      bundlePolicy: 'max-bundle',
    });
    this.watch(this.pc);
    // media first, as an app that asks for the camera before it joins: no description waits
    // on the devices, and the peer's offer is never received while they start
    await this.acquireMedia();
    await this.openSignaling();
    if (cmd.role === 'offer') {
      this.addTracks();
      this.attach(this.pc.createDataChannel(CHANNEL_LABEL, {ordered: true}));
      await this.offer();
    } else {
      this.pc.ondatachannel = (event) => this.attach(event.channel);
      await this.answer();
    }
    await this.connect();
    await this.datachannel();
    await this.media();
    await this.hold();
    await this.finish();
  }

  async hold() {
    const opened = this.phaseT.dc_open;
    if (this.cmd.hold_s && opened !== undefined) {
      const remaining = opened + this.cmd.hold_s * 1000 - now();
      if (remaining > 0) await sleep(Math.min(remaining, this.cmd.hold_s * 1000));
    }
  }

  // --- signaling -------------------------------------------------------------------------------

  async openSignaling() {
    const cmd = this.cmd;
    let url;
    try {
      url = wsUrl(cmd.signaling_url_base, cmd.room, cmd.peer);
    } catch (e) {
      throw new CallFailed('signaling', `bad signaling url ${cmd.signaling_url_base}`);
    }
    this.signaling = new Signaling(url, (message) => this.onSignal(message));
    await this.signaling.open(cmd.timeouts.signaling_s);
    // a broken channel fails whatever waits on the peer's description
    this.signaling.ended.promise.catch((failure) => this.description.reject(failure));
  }

  send(message) {
    this.signaling.send({...message, from: this.cmd.peer, to: this.cmd.remote_peer});
  }

  onSignal(message) {
    if (message.from !== this.cmd.remote_peer) return;
    if (message.to !== undefined && message.to !== this.cmd.peer) return;
    const expected = this.cmd.role === 'offer' ? 'answer' : 'offer';
    if (message.type === 'offer' && expected === 'offer' && this.description.done && typeof message.sdp === 'string') {
      this.remoteSet = false; // its candidates wait for it, as at the start
      this.answerRestart(message.sdp, now());
    } else if (message.type === expected && typeof message.sdp === 'string') {
      this.description.resolve({sdp: message.sdp, arrived: now()});
    } else if (message.type === 'candidate' && typeof message.candidate === 'string') {
      if (!message.candidate) return;
      const init = {
        candidate: message.candidate,
        sdpMid: message.sdpMid ?? null,
        sdpMLineIndex: message.sdpMLineIndex ?? null,
      };
      if (init.sdpMid === null && init.sdpMLineIndex === null) init.sdpMLineIndex = 0;
      this.remoteCandidates.push(message.candidate);
      const arrived = now();
      if (this.remoteSet) this.addRemote(init, arrived);
      else this.pendingRemote.push([init, arrived]);
    } else if (message.type === 'end-of-candidates') {
      this.remoteEnded = true;
      window.simnetEvent(JSON.stringify({event: 'remote_candidates_end', pt: now()}));
      this.checkPath();
    }
  }

  // A trickled candidate, applied once the remote description is set; its event is stamped
  // when it arrived and says whether the browser took it.
  addRemote(init, arrived) {
    const report = (applied) =>
      window.simnetEvent(
        JSON.stringify({event: 'remote_candidate', pt: arrived, candidate: init.candidate, applied}),
      );
    this.pc.addIceCandidate(init).then(
      () => report(true),
      (e) => {
        report(false);
        emit('log', {message: `remote candidate rejected: ${e.message}: ${init.candidate}`});
      },
    );
  }

  async receive() {
    try {
      return await bounded('signaling', this.description.promise, this.cmd.timeouts.signaling_s);
    } catch (e) {
      if (e instanceof CallFailed && e.kind === 'timeout:signaling') {
        const kind = this.cmd.role === 'offer' ? 'answer' : 'offer';
        throw new CallFailed('timeout:signaling', `no ${kind} from ${this.cmd.remote_peer}`);
      }
      throw e;
    }
  }

  async setRemote(type, sdp) {
    for (const line of sdp.split(/\r?\n/)) {
      if (line.startsWith('a=candidate:')) this.remoteCandidates.push(line.slice(2));
      if (line.startsWith('a=end-of-candidates')) this.remoteEnded = true;
    }
    await this.pc.setRemoteDescription({type, sdp});
    this.remoteSet = true;
    for (const [init, arrived] of this.pendingRemote.splice(0)) this.addRemote(init, arrived);
    this.checkPath();
  }

  sendDescription(type, milestone = true) {
    const handed = now();
    this.send({type, sdp: this.pc.localDescription.sdp});
    this.descriptionSent = true;
    if (milestone) this.eventAt(`${type}_sent`, handed);
    for (const message of this.unsent.splice(0)) this.send(message);
  }

  // --- offer / answer --------------------------------------------------------------------------

  async offer() {
    const offer = await this.pc.createOffer();
    this.event('offer_created');
    await this.setLocal(offer);
    this.sendDescription('offer');
    const {sdp, arrived} = await this.receive();
    this.eventAt('answer_received', arrived);
    await this.setRemote('answer', sdp);
  }

  async answer() {
    const {sdp, arrived} = await this.receive();
    this.eventAt('offer_received', arrived);
    await this.setRemote('offer', sdp);
    this.addTracks(); // after the offer: they take its transceivers (sendrecv)
    const answer = await this.pc.createAnswer();
    await this.setLocal(answer);
    this.sendDescription('answer');
  }

  async setLocal(description) {
    this.gatherStarted = now();
    await bounded('gathering', this.pc.setLocalDescription(description), this.cmd.timeouts.gathering_s);
    this.watchDtls();
  }

  // The DTLS transport's own state change comes before the peer connection's aggregate
  // "connected" (Chromium dispatches that one later, sometimes after the data channel opened).
  watchDtls() {
    const transports = new Set();
    if (this.pc.sctp) transports.add(this.pc.sctp.transport);
    for (const t of this.pc.getTransceivers()) {
      if (t.sender.transport) transports.add(t.sender.transport);
    }
    for (const transport of transports) {
      if (this.dtlsWatched.has(transport)) continue;
      this.dtlsWatched.add(transport);
      const changed = () => {
        if (transport.state === 'connected') this.dtlsConnected();
        else if (transport.state === 'failed') this.dtlsDone.resolve(false);
      };
      transport.addEventListener('statechange', changed);
      changed();
    }
  }

  dtlsConnected() {
    if (!this.dtlsDone.done) {
      this.event('dtls_connected');
      this.dtlsDone.resolve(true);
      // The pair as connected: when the peer closes first, this side's transport can be gone
      // before the call's last snapshot, and the selected pair with it (as aiortc's agent keeps
      // the nominated pair). Not awaited: it must not delay the call.
      this.snapshot().then((stats) => { this.connectedStats = stats; }, () => {});
    }
  }

  // No candidate pair can ever form: fail now, not at the ICE timeout (call/transport.py's check).
  checkPath() {
    if (this.connected || this.iceDone.done) return;
    const local = this.localCandidates.length;
    if (this.gatheringComplete.done && local === 0) {
      const refusal = this.turnRefusal();
      if (refusal) {
        this.noPath.reject(new CallFailed(refusal.kind, `no local candidate: ${refusal.detail}`));
      } else {
        const errors = this.candidateErrors.map((e) => `${e.url}: ${e.error_code} ${e.error_text}`);
        const detail = errors.length ? `: ${errors.join('; ')}` : ' gathered';
        this.noPath.reject(new CallFailed('ice-failed', `no local candidate${detail}`));
      }
    } else if (
      this.gatheringComplete.done && // our own gathering first: its 401 is the better cause
      this.remoteSet &&
      this.remoteEnded &&
      this.remoteCandidates.length === 0
    ) {
      this.noPath.reject(new CallFailed('ice-failed', 'the peer sent no candidate (it gathered none)'));
    }
  }

  authFailed() {
    return this.candidateErrors.some((e) => e.error_code === 401);
  }

  // A TURN server's refusal, as the aiortc agent classifies it (aioice_adapter.refusal): its
  // limits first (486 Allocation Quota Reached, 508 Insufficient Capacity), then 401.
  turnRefusal() {
    const quota = [...new Set(this.candidateErrors.map((e) => e.error_code).filter((c) => c === 486 || c === 508))];
    if (quota.length) {
      return {kind: 'turn-quota', detail: `the TURN server refused the allocation (${quota.sort().join(', ')})`};
    }
    if (this.authFailed()) return {kind: 'turn-auth', detail: 'the TURN server answered 401'};
    return null;
  }

  // --- connection ------------------------------------------------------------------------------

  watch(pc) {
    pc.onicecandidate = (event) => {
      const c = event.candidate;
      let message;
      if (c && c.candidate) {
        this.localCandidates.push({
          candidate: c.candidate,
          url: c.url || event.url || null,
          relay_protocol: c.relayProtocol || null,
          pt: now(),
        });
        message = {type: 'candidate', candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex};
      } else if (!c) {
        message = {type: 'end-of-candidates'};
      } else {
        return; // an empty candidate string: the end of one generation, not of gathering
      }
      if (this.descriptionSent) {
        try {
          this.send(message);
        } catch (e) {
          // the channel broke: the wait on the peer's description reports it
        }
      } else {
        this.unsent.push(message);
      }
    };
    pc.onicecandidateerror = (event) => {
      this.candidateErrors.push({
        url: event.url,
        address: event.address,
        port: event.port,
        error_code: event.errorCode,
        error_text: event.errorText,
        pt: now(),
      });
    };
    pc.onicegatheringstatechange = () => {
      if (pc.iceGatheringState === 'complete' && !this.gatheringComplete.done) {
        const counts = {};
        for (const c of this.localCandidates) {
          const type = candidateType(c.candidate);
          counts[type] = (counts[type] || 0) + 1;
        }
        this.event('gathering_done', {candidates: counts});
        this.gatheringComplete.resolve();
        this.checkPath();
      }
    };
    pc.oniceconnectionstatechange = () => {
      const state = pc.iceConnectionState;
      const t = now();
      emit('ice_state', {kind: 'ice', state});
      if (state === 'checking') {
        this.event('ice_checking');
      } else if (state === 'connected' || state === 'completed') {
        this.event('ice_connected');
        this.iceDone.resolve(true);
        this.countDisconnected(t);
      } else if (state === 'disconnected') {
        if (this.iceDone.done && this.disconnectedAt === null) {
          this.disconnects += 1;
          this.disconnectedAt = t;
        }
      } else if (state === 'failed') {
        this.event('ice_failed');
        this.iceDone.resolve(false);
        this.countDisconnected(t);
      }
    };
    pc.onconnectionstatechange = () => {
      const state = pc.connectionState;
      emit('ice_state', {kind: 'connection', state});
      if (state === 'connected') {
        this.dtlsConnected();
      } else if (state === 'failed') {
        this.iceDone.resolve(false);
        this.dtlsDone.resolve(false);
      }
    };
    pc.ontrack = (event) => this.render(event.track);
  }

  countDisconnected(until) {
    if (this.disconnectedAt !== null) {
      this.disconnectedMs += until - this.disconnectedAt;
      this.disconnectedAt = null;
    }
  }

  async connect() {
    const timeouts = this.cmd.timeouts;
    const ice = Promise.race([this.iceDone.promise, this.noPath.promise]);
    if (!(await bounded('ice', ice, timeouts.ice_s))) {
      const refusal = this.turnRefusal();
      if (refusal && !this.localCandidates.some((c) => candidateType(c.candidate) === 'relay')) {
        throw new CallFailed(refusal.kind, `ICE failed and ${refusal.detail}`);
      }
      throw new CallFailed('ice-failed', 'no candidate pair succeeded');
    }
    if (!(await bounded('dtls', this.dtlsDone.promise, timeouts.dtls_s))) {
      throw new CallFailed('dtls', 'DTLS handshake failed');
    }
    this.connected = true;
    this.watchPair();
  }

  // libwebrtc keeps checking after it connects and may move the call to a better pair (e.g.
  // the relay with the lower RTT once both have answered): each move is an event, and the
  // result's pair is the one in use at the end (report), not the first.
  watchPair() {
    const transport = this.pc.sctp ? this.pc.sctp.transport.iceTransport : null;
    if (!transport || this.pairWatched) return;
    this.pairWatched = true;
    transport.addEventListener('selectedcandidatepairchange', () => {
      const pair = transport.getSelectedCandidatePair ? transport.getSelectedCandidatePair() : null;
      if (!pair) return;
      this.event('selected_pair_changed', {
        local: `${pair.local.type} ${pair.local.address}:${pair.local.port}`,
        remote: `${pair.remote.type} ${pair.remote.address}:${pair.remote.port}`,
      }, `selected_pair_changed:${++this.pairChanges}`);
    });
  }

  // --- data channel ----------------------------------------------------------------------------

  attach(dc) {
    if (this.dc) return;
    this.dc = dc;
    dc.binaryType = 'arraybuffer';
    const opened = () => {
      if (!this.dcOpen.done) {
        this.event('dc_open');
        this.dcOpen.resolve(dc);
      }
    };
    dc.onopen = opened;
    dc.onmessage = (event) => this.onMessage(event.data);
    // the peer closes only after it has measured and had our "done" (see call/datachannel.py)
    dc.onclose = () => this.peerDone.resolve();
    if (dc.readyState === 'open') opened();
  }

  sendControl(message) {
    this.dc.send(JSON.stringify(message));
  }

  onMessage(data) {
    if (typeof data !== 'string') {
      this.onBulk(data.byteLength);
      return;
    }
    let message;
    try {
      message = JSON.parse(data);
    } catch (e) {
      return;
    }
    const kind = message.type;
    if (kind === 'ping') {
      this.sendControl({type: 'pong', seq: message.seq});
    } else if (kind === 'pong') {
      const waiter = this.pongs.get(message.seq);
      if (waiter) waiter.resolve(now());
    } else if (kind === 'bulk') {
      this.rxExpected = Number(message.bytes);
      this.rxT0 = Number(message.t0);
      this.rxBytes = 0;
      this.onBulk(0);
    } else if (kind === 'bulk-done') {
      this.bulkDone.resolve(message);
    } else if (kind === 'summary') {
      this.dcRttMs = message.rtt_ms == null ? null : Number(message.rtt_ms);
      this.summary.resolve(message);
    } else if (kind === 'done') {
      this.peerDone.resolve();
    }
  }

  onBulk(size) {
    this.rxBytes += size;
    if (this.rxExpected === null || this.rxBytes < this.rxExpected) return;
    const tLast = this.shared();
    const elapsed = tLast - this.rxT0;
    const goodput = elapsed > 0 ? (this.rxBytes * 8) / elapsed / 1e6 : null;
    this.rxExpected = null;
    const report = {type: 'bulk-done', bytes: this.rxBytes, t_last: tLast, goodput_mbps: goodput};
    this.sendControl(report);
    this.bulkDone.resolve(report);
  }

  async datachannel() {
    const limit = this.cmd.timeouts.datachannel_s;
    await bounded('datachannel', this.dcOpen.promise, limit);
    if (this.cmd.role === 'offer') {
      if (this.cmd.rtt_probes) await bounded('datachannel', this.probeRtt(), limit);
      if (this.cmd.data_bytes) await bounded('datachannel', this.sendBulk(), limit);
      this.sendControl({type: 'summary', rtt_ms: this.dcRttMs});
    } else {
      if (this.cmd.data_bytes) await bounded('datachannel', this.bulkDone.promise, limit);
      await bounded('datachannel', this.summary.promise, limit);
    }
    if (this.bulkDone.done) {
      const report = await this.bulkDone.promise;
      this.dcBytes = Number(report.bytes);
      this.dcGoodputMbps = report.goodput_mbps == null ? null : Number(report.goodput_mbps);
    }
  }

  async probeRtt() {
    const samples = [];
    for (let seq = 0; seq < this.cmd.rtt_probes; seq++) {
      const waiter = deferred();
      this.pongs.set(seq, waiter);
      const sent = now();
      this.sendControl({type: 'ping', seq});
      samples.push((await waiter.promise) - sent);
    }
    samples.sort((a, b) => a - b);
    const mid = samples.length >> 1;
    this.dcRttMs = samples.length % 2 ? samples[mid] : (samples[mid - 1] + samples[mid]) / 2;
  }

  async sendBulk() {
    const dc = this.dc;
    dc.bufferedAmountLowThreshold = BUFFER_LOW_BYTES;
    let low = deferred();
    dc.onbufferedamountlow = () => low.resolve();
    const total = this.cmd.data_bytes;
    const chunk = this.cmd.data_chunk_bytes;
    const payload = new Uint8Array(chunk);
    this.sendControl({type: 'bulk', bytes: total, t0: this.shared()});
    let sent = 0;
    while (sent < total) {
      while (dc.bufferedAmount > BUFFER_HIGH_BYTES) {
        low = deferred();
        await low.promise;
      }
      const size = Math.min(chunk, total - sent);
      dc.send(size === chunk ? payload : payload.subarray(0, size));
      sent += size;
    }
    await this.bulkDone.promise;
  }

  // --- media -----------------------------------------------------------------------------------

  kinds() {
    const media = this.cmd.media;
    return (media.audio ? ['audio'] : []).concat(media.video ? ['video'] : []);
  }

  async acquireMedia() {
    const media = this.cmd.media;
    if (!this.kinds().length) return;
    const constraints = {audio: !!media.audio, video: false};
    if (media.video) {
      // the fake camera runs at 30 fps (the agent's flag) in its own formats: the browser
      // scales and drops frames down to these
      constraints.video = {
        width: {ideal: media.video.width, max: media.video.width},
        height: {ideal: media.video.height, max: media.video.height},
        frameRate: {ideal: media.video.fps, max: media.video.fps},
      };
    }
    try {
      this.stream = await navigator.mediaDevices.getUserMedia(constraints);
    } catch (e) {
      throw new CallFailed('media', `getUserMedia failed: ${e.name}: ${e.message}`);
    }
    this.watchFirstFrames();
  }

  addTracks() {
    if (!this.stream) return;
    for (const track of this.stream.getTracks()) this.pc.addTrack(track, this.stream);
  }

  // A remote track plays in a media element, as in an app (audio is pulled by its output).
  render(track) {
    const element = document.createElement(track.kind === 'video' ? 'video' : 'audio');
    element.autoplay = true;
    element.muted = track.kind === 'video';
    element.srcObject = new MediaStream([track]);
    document.getElementById('media').appendChild(element);
    element.play().catch(() => {});
  }

  // First frame sent (encoded / packetized) and received (decoded / played out) per kind, from
  // getStats() every FIRST_FRAME_POLL_MS: the events carry that resolution.
  async watchFirstFrames() {
    const expected = new Set(this.kinds().flatMap((k) => [`${k}:send`, `${k}:recv`]));
    while (this.firstFrames.size < expected.size && this.pc && this.pc.signalingState !== 'closed') {
      await sleep(FIRST_FRAME_POLL_MS);
      let report;
      try {
        report = await this.pc.getStats();
      } catch (e) {
        return;
      }
      for (const stats of report.values()) {
        let key = null;
        if (stats.type === 'outbound-rtp' && (stats.kind === 'video' ? stats.framesEncoded : stats.packetsSent) > 0) {
          key = `${stats.kind}:send`;
        } else if (
          stats.type === 'inbound-rtp' &&
          (stats.kind === 'video' ? stats.framesDecoded : stats.totalSamplesReceived) > 0
        ) {
          key = `${stats.kind}:recv`;
        }
        if (key && expected.has(key) && !this.firstFrames.has(key)) {
          this.firstFrames.add(key);
          const [kind, direction] = key.split(':');
          this.event('first_frame', {kind, direction}, `first_frame:${key}`);
        }
      }
      const received = this.kinds().every((k) => this.firstFrames.has(`${k}:recv`));
      if (received) this.mediaReady.resolve();
    }
  }

  async media() {
    if (!this.kinds().length) return;
    await bounded('media', this.mediaReady.promise, this.cmd.timeouts.media_s);
    const start = now();
    const first = await this.snapshot();
    const end = start + this.cmd.duration_s * 1000;
    if (end > now()) await sleep(end - now());
    const last = await this.snapshot();
    this.mediaWindow = [start, now()];
    this.mediaStats = [first, last];
    if (this.cmd.duration_s > 0) {
      const silent = this.kinds().filter((kind) => {
        const before = first.find((s) => s.type === 'inbound-rtp' && s.kind === kind);
        const after = last.find((s) => s.type === 'inbound-rtp' && s.kind === kind);
        if (!after) return true;
        const count = (s) => (kind === 'video' ? s.framesDecoded : s.totalSamplesReceived) || 0;
        return count(after) - (before ? count(before) : 0) <= 0;
      });
      if (silent.length) {
        throw new CallFailed('media', `no ${silent.join(', ')} frames during the media window`);
      }
    }
  }

  async snapshot() {
    return [...(await this.pc.getStats()).values()];
  }

  // --- ICE restart -------------------------------------------------------------------------------

  // The agent's ice-restart command: {supported, reason}; the restart itself runs in the background.
  iceRestart() {
    if (this.cmd.role !== 'offer') return {supported: false, reason: 'only the offerer restarts ICE'};
    if (!this.dc || this.phaseT.dc_open === undefined) {
      return {supported: false, reason: 'the call is not connected yet'};
    }
    if (!this.pc || this.pc.signalingState === 'closed') return {supported: false, reason: 'the call has ended'};
    if (this.restarting) return {supported: false, reason: 'an ICE restart is already running'};
    this.restarting = true;
    this.restart().finally(() => (this.restarting = false));
    return {supported: true};
  }

  async restart() {
    const n = ++this.restarts;
    try {
      this.remoteSet = false; // the answer's candidates wait for it
      this.descriptionSent = false; // our new candidates go after the new offer
      this.description = deferred(); // the answer to this offer
      // A new signaling connection first, as an app does after a network change: the old one's
      // TCP connection may be dead (its address gone) without the browser knowing yet.
      this.signaling.close();
      await this.openSignaling();
      const offer = await this.pc.createOffer({iceRestart: true});
      this.event('ice_restart_started', {}, `ice_restart_started:${n}`);
      await bounded('gathering', this.pc.setLocalDescription(offer), this.cmd.timeouts.gathering_s);
      this.sendDescription('offer', false);
      const {sdp} = await this.receive();
      await this.setRemote('answer', sdp);
      await this.restarted(n);
    } catch (e) {
      const reason = e instanceof CallFailed ? e.message : `${e && e.name}: ${e && e.message}`;
      this.event('ice_restart_failed', {reason}, `ice_restart_failed:${n}`);
    }
  }

  // The answerer: an offer after the first one renegotiates (new ICE credentials: a restart).
  async answerRestart(sdp, arrived) {
    const n = ++this.restarts;
    try {
      this.eventAt('ice_restart_started', arrived, {}, `ice_restart_started:${n}`);
      this.descriptionSent = false;
      await this.setRemote('offer', sdp);
      const answer = await this.pc.createAnswer();
      await bounded('gathering', this.pc.setLocalDescription(answer), this.cmd.timeouts.gathering_s);
      this.sendDescription('answer', false);
      await this.restarted(n);
    } catch (e) {
      const reason = e instanceof CallFailed ? e.message : `${e && e.name}: ${e && e.message}`;
      this.event('ice_restart_failed', {reason}, `ice_restart_failed:${n}`);
    }
  }

  // After restart `n`'s descriptions are applied: ICE connected on a pair of the new credentials
  // (ice_restart_connected), then the first media packet received (media_resumed).
  async restarted(n) {
    const ufrag = /a=ice-ufrag:(\S+)/.exec(this.pc.localDescription.sdp);
    const mine = ufrag ? ufrag[1] : null;
    const transport = this.pc.sctp ? this.pc.sctp.transport.iceTransport : null;
    const connected = () => {
      if (!['connected', 'completed'].includes(this.pc.iceConnectionState)) return false;
      const pair = transport && transport.getSelectedCandidatePair ? transport.getSelectedCandidatePair() : null;
      return !mine || !pair || pair.local.usernameFragment === mine;
    };
    const deadline = now() + this.cmd.timeouts.ice_s * 1000;
    while (!connected()) {
      if (this.pc.signalingState === 'closed') return;
      if (now() > deadline) {
        throw new CallFailed('timeout:ice', `ICE not connected within ${this.cmd.timeouts.ice_s} s of the restart`);
      }
      await sleep(FIRST_FRAME_POLL_MS);
    }
    this.event('ice_restart_connected', {}, `ice_restart_connected:${n}`);
    await this.mediaResumed(n, deadline);
  }

  // The first media packet received after ICE came back, per kind (to FIRST_FRAME_POLL_MS).
  async mediaResumed(n, deadline) {
    const received = async () => {
      const counts = {};
      for (const stats of (await this.pc.getStats()).values()) {
        if (stats.type === 'inbound-rtp') counts[stats.kind] = (counts[stats.kind] || 0) + (stats.packetsReceived || 0);
      }
      return counts;
    };
    const before = await received();
    const waiting = new Set(this.kinds());
    while (waiting.size && this.pc.signalingState !== 'closed' && now() < deadline + this.cmd.timeouts.media_s * 1000) {
      await sleep(FIRST_FRAME_POLL_MS);
      const counts = await received();
      for (const kind of [...waiting]) {
        if ((counts[kind] || 0) > (before[kind] || 0)) {
          waiting.delete(kind);
          this.event('media_resumed', {kind}, `media_resumed:${kind}:${n}`);
        }
      }
    }
  }

  // --- ending ----------------------------------------------------------------------------------

  async finish() {
    if (!this.dc || this.dc.readyState !== 'open') return;
    // The pair in use at the end of the call: once "done" is exchanged the peer closes, and
    // this side's transport (with its selected pair) can be gone before report() looks.
    try {
      this.openStats = await this.snapshot();
    } catch (e) {
      this.openStats = null;
    }
    this.sendControl({type: 'done'});
    try {
      await bounded('done', this.peerDone.promise, Math.min(this.doneWaitS, this.cmd.timeouts.datachannel_s));
    } catch (e) {
      // the peer may be gone: its "done" was the last thing we needed
    }
  }

  async report(failure) {
    let stats = [];
    if (this.pc && this.pc.signalingState !== 'closed') {
      try {
        stats = await this.snapshot();
      } catch (e) {
        stats = [];
      }
    }
    return {
      role: this.cmd.role,
      connected: this.connected,
      error: failure ? failure.kind : null,
      error_detail: failure ? failure.detail : null,
      phase_pt: this.phaseT,
      gather_started_pt: this.gatherStarted,
      local_candidates: this.localCandidates,
      remote_candidates: this.remoteCandidates,
      candidate_errors: this.candidateErrors,
      dc_rtt_ms: this.dcRttMs,
      dc_bytes: this.dcBytes,
      dc_goodput_mbps: this.dcGoodputMbps,
      media_stats: this.mediaStats,
      media_window_pt: this.mediaWindow,
      disconnects: this.disconnects,
      disconnected_s: this.disconnectedMs / 1000,
      stats,
      open_stats: this.openStats || [],
      connected_stats: this.connectedStats || [],
    };
  }

  async close() {
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    for (const element of document.querySelectorAll('#media > *')) {
      element.srcObject = null;
      element.remove();
    }
    if (this.pc) this.pc.close(); // synchronous: the browser deallocates TURN in the background
    if (this.signaling) this.signaling.close();
  }
}

// --- what the agent calls ----------------------------------------------------------------------

window.simnetNow = now;

// Exercise a call's first-use paths (certificate, SDP, ICE agent, the fake capture devices and
// the browser's media services) once, off the clock.
window.simnetWarmUp = async function () {
  const pc = new RTCPeerConnection({iceServers: []});
  pc.createDataChannel('warm-up');
  await pc.setLocalDescription(await pc.createOffer());
  pc.close();
  const stream = await navigator.mediaDevices.getUserMedia({audio: true, video: true});
  for (const track of stream.getTracks()) track.stop();
  return true;
};

let current = null; // the call running, for simnetIceRestart

// Start one call; it reports through window.simnetEvent and ends with "report" and "closed".
window.simnetCall = function (spec) {
  const call = (current = new Call(spec));
  call
    .run()
    .catch((e) => emit('page_error', {message: `${e && e.name}: ${e && e.message}`}))
    .finally(() => {
      if (current === call) current = null;
    });
  return true;
};

// The agent's ice-restart command: {supported, reason?} at once; the restart reports its events.
window.simnetIceRestart = function () {
  if (!current) return {supported: false, reason: 'no call in progress'};
  return current.iceRestart();
};
