// An agent of the origin system's shape, for comparison with
// iamalive-agent (see BENCHMARKS.md, "The agent"): post {host} to the
// watcher every interval, nothing else. Node.js 18+ (global fetch).
const url = process.env.URL;
const key = process.env.KEY;
const host = process.env.HOST || require("os").hostname();
const interval = Number(process.env.INTERVAL_MS || 300000);

async function beat() {
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ host }),
    });
    await res.text();
  } catch (e) {
    console.error(`heartbeat failed: ${e.message}`);
  }
}

beat();
setInterval(beat, interval);
