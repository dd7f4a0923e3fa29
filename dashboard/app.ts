/// <reference lib="dom" />
/**
 * The Lethe dashboard: the request list with filters and deadline countdowns, a request's
 * per-system timeline and receipt, what is overdue or failed at a glance, and charts of volume
 * and completion time. It only reads. Two ways to reach the API:
 * - served by local mode or `lethe dashboard`: through that server (`api/…`), which signs;
 * - served by the stack (`/dashboard/` on the API) and opened with `lethe dashboard --link`: the
 *   link's fragment holds session credentials (never sent to a server), kept in this tab's
 *   sessionStorage, and each read is signed here with SigV4.
 */
import { AwsClient } from 'aws4fetch';
import { humanDuration } from '../core/duration.ts';
import type { ListedRequest, RequestDetail, Summary } from '../core/report.ts';
import { BarController, BarElement, CategoryScale, Chart, Filler, LinearScale, LineController, LineElement, PointElement, Tooltip } from 'chart.js';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, LineController, LineElement, PointElement, Filler, Tooltip);


/** Final statuses (core/request.ts holds them, with what a browser cannot load: the types only come from core). */
const FINAL = ['completed', 'partially_failed', 'needs_review', 'failed', 'cancelled'];
const UNSUCCESSFUL = ['failed', 'partially_failed', 'needs_review'];
const REFRESH_MS = 5000;
const $ = <T extends HTMLElement>(selector: string) => document.querySelector<T>(selector)!;

let chosen: string | undefined;
let cursor: string | undefined;
let listed: ListedRequest[] = [];
const charts: { volume?: Chart; completion?: Chart } = {};

const SESSION = 'lethe-session';
interface Session {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  region: string;
  expiration?: string;
}

/** The session a `--link` opened this tab with, taken out of the address bar at once. */
function session(): AwsClient | undefined {
  if (location.hash.length > 1) {
    sessionStorage.setItem(SESSION, atob(decodeURIComponent(location.hash.slice(1))));
    history.replaceState(null, '', location.pathname + location.search);
  }
  const raw = sessionStorage.getItem(SESSION);
  if (!raw) return undefined;
  const s = JSON.parse(raw) as Session;
  return new AwsClient({ accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey, ...(s.sessionToken && { sessionToken: s.sessionToken }), region: s.region, service: 'execute-api', retries: 0 });
}
const signer = session();

/** A read of the API: signed here (the stack's page, `../v1/…`), or through the serving proxy (`api/v1/…`). */
async function read(path: string): Promise<Response> {
  const response = signer ? await signer.fetch(new URL(`..${path}`, document.baseURI).href) : await fetch(`api${path}`);
  if (!response.ok) {
    const expired = response.status === 403 && signer ? ' (the link’s session may have expired: get a new one with lethe dashboard --link)' : '';
    throw new Error(`${path}: HTTP ${String(response.status)} ${await response.text()}${expired}`);
  }
  return response;
}

async function api<T>(path: string): Promise<T> {
  return (await (await read(path)).json()) as T;
}

/** Save a final request's signed receipt, as it came. */
async function downloadReceipt(requestId: string): Promise<void> {
  const blob = await (await read(`/v1/requests/${requestId}/receipt`)).blob();
  const link = Object.assign(document.createElement('a'), { href: URL.createObjectURL(blob), download: `receipt-${requestId}.json` });
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

const plural = (n: number, word: string) => `${String(n)} ${word}${n === 1 ? '' : 's'}`;

/** Text, escaped for HTML. */
const esc = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${String(c.charCodeAt(0))};`);
const when = (iso: string) => iso.slice(0, 16).replace('T', ' ');

/** "in 29 d 4 h", "3 h overdue", or for a final request when it finished. */
function countdown(r: ListedRequest, now: number): string {
  if (FINAL.includes(r.status)) return r.completedAt ? `done ${when(r.completedAt)}` : 'done';
  const ms = Date.parse(r.dueAt) - now;
  const abs = Math.abs(ms);
  const days = Math.floor(abs / 86_400_000);
  const hours = Math.floor((abs % 86_400_000) / 3_600_000);
  const minutes = Math.floor((abs % 3_600_000) / 60_000);
  const span = days > 0 ? `${String(days)} d ${String(hours)} h` : hours > 0 ? `${String(hours)} h ${String(minutes)} min` : `${String(minutes)} min`;
  return ms >= 0 ? `in ${span}` : `${span} overdue`;
}

function fillSelect(name: string, values: string[]): void {
  const select = $<HTMLSelectElement>(`#filters select[name=${name}]`);
  if (select.options.length > 1) return;
  for (const v of values) select.add(new Option(v.replace('_', ' '), v));
}

async function loadSummary(): Promise<void> {
  const s = await api<Summary>('/v1/reports/summary');
  fillSelect('status', Object.keys(s.byStatus));
  fillSelect('type', Object.keys(s.byType));
  fillSelect('regulation', Object.keys(s.byRegulation));
  $('#period').textContent = `last 30 days: ${when(s.since)} to ${when(s.until)} UTC`;
  const failed = (s.byStatus['failed'] ?? 0) + (s.byStatus['partially_failed'] ?? 0);
  const review = s.byStatus['needs_review'] ?? 0;
  const open = (s.byStatus['received'] ?? 0) + (s.byStatus['in_progress'] ?? 0);
  const cards: [string, string, boolean][] = [
    ['received', String(s.total), false],
    ['open', String(open), false],
    ['overdue', String(s.overdue), s.overdue > 0],
    ['failed or partly', String(failed), failed > 0],
    ['needs review', String(review), review > 0],
    ['nothing found', String(s.nothingFound), false],
    ['median to complete', s.completionSeconds.median === null ? '–' : humanDuration(s.completionSeconds.median), false],
    ['p95 to complete', s.completionSeconds.p95 === null ? '–' : humanDuration(s.completionSeconds.p95), false],
  ];
  $('#cards').innerHTML = cards.map(([label, value, alert]) => `<div class="card${alert ? ' alert' : ''}" data-card="${esc(label)}"><b>${esc(value)}</b><span>${esc(label)}</span></div>`).join('');
  drawCharts(s);
}

function drawCharts(s: Summary): void {
  const labels = s.daily.map((d) => d.date.slice(5));
  const volume = { labels, datasets: [{ label: 'received', data: s.daily.map((d) => d.received), backgroundColor: '#175cd3', maxBarThickness: 48 }] };
  const completion = { labels, datasets: [{ label: 'median minutes', data: s.daily.map((d) => (d.medianCompletionSeconds === null ? null : d.medianCompletionSeconds / 60)), borderColor: '#12805c', backgroundColor: 'rgba(18,128,92,.15)', fill: true, tension: 0.3 }] };
  const options = { animation: false as const, responsive: true, maintainAspectRatio: false, plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } };
  if (charts.volume) {
    charts.volume.data = volume;
    charts.volume.update();
  } else charts.volume = new Chart($<HTMLCanvasElement>('#volume'), { type: 'bar', data: volume, options });
  if (charts.completion) {
    charts.completion.data = completion;
    charts.completion.update();
  } else charts.completion = new Chart($<HTMLCanvasElement>('#completion'), { type: 'line', data: completion, options });
}

function filterQuery(): URLSearchParams {
  const form = new FormData($<HTMLFormElement>('#filters'));
  const query = new URLSearchParams({ limit: '50' });
  for (const name of ['status', 'type', 'regulation']) {
    const v = form.get(name);
    if (typeof v === 'string' && v) query.set(name, v);
  }
  if (form.get('overdue')) query.set('overdue', 'true');
  return query;
}

async function loadList(append = false): Promise<void> {
  const query = filterQuery();
  if (append && cursor) query.set('cursor', cursor);
  const page = await api<{ requests: ListedRequest[]; cursor?: string }>(`/v1/requests?${query.toString()}`);
  listed = append ? [...listed, ...page.requests] : page.requests;
  cursor = page.cursor;
  $('#more').hidden = !cursor;
  renderRows();
}

function renderRows(): void {
  const now = Date.now();
  $('#rows').innerHTML = listed
    .map((r) => {
      const classes = [r.overdue ? 'overdue' : '', UNSUCCESSFUL.includes(r.status) ? 'failed' : '', r.requestId === chosen ? 'chosen' : ''].filter(Boolean).join(' ');
      return `<tr data-id="${esc(r.requestId)}" class="${classes}">
        <td><code>${esc(r.requestId.slice(0, 8))}…</code></td><td>${esc(r.type)}</td><td>${esc(r.regulation.toUpperCase())}</td>
        <td class="status"><span class="badge ${esc(r.status)}">${esc(r.status.replace('_', ' '))}</span></td>
        <td>${esc(when(r.receivedAt))}</td><td class="deadline">${esc(countdown(r, now))}</td></tr>`;
    })
    .join('');
  if (listed.length === 0) $('#rows').innerHTML = '<tr><td colspan="6" class="hint">No requests match.</td></tr>';
}

async function loadDetail(): Promise<void> {
  if (!chosen) return;
  const r = await api<RequestDetail>(`/v1/requests/${chosen}`);
  const start = Date.parse(r.receivedAt);
  const end = Math.max(Date.now(), ...r.systems.map((s) => Date.parse(s.updatedAt)), r.completedAt ? Date.parse(r.completedAt) : 0);
  const span = Math.max(1, end - start);
  const lanes = r.systems
    .map((s) => {
      const left = 0;
      const width = Math.max(1, ((Date.parse(s.updatedAt) - start) / span) * 100);
      const detail = [s.action, s.affected === null ? '' : plural(s.affected, 'record'), plural(s.attempts, 'attempt'), s.error ? `${s.error.name}: ${s.error.message}` : ''].filter(Boolean).join(' · ');
      // A system that needs review says what its wider net found, counted by reason.
      const review = s.nearMisses ? Object.entries(s.nearMisses).map(([reason, n]) => `${String(n)} ${reason.replace('_', ' ')}`).join(', ') : '';
      return `<div class="lane" data-system="${esc(s.system)}"><div><b>${esc(s.system)}</b><small class="${esc(s.status)}">${esc(s.status.replace(/_/g, ' '))}</small></div>
        <div><div class="track ${esc(s.status)}"><div class="bar" style="left:${String(left)}%;width:${width.toFixed(1)}%"></div></div><small>${esc(detail)} · ${esc(when(s.updatedAt))}</small>${review ? `<small class="near-misses">near-misses: ${esc(review)}</small>` : ''}</div></div>`;
    })
    .join('');
  const final = FINAL.includes(r.status);
  $('#detail').innerHTML = `<h2><code>${esc(r.requestId)}</code></h2>
    <p>${esc(r.type)} under ${esc(r.regulation.toUpperCase())}: <span class="badge ${esc(r.status)}">${esc(r.status.replace('_', ' '))}</span>${r.nothingFound ? ' <span class="badge nothing" data-nothing-found>nothing found in any system</span>' : ''}</p>
    <p>received ${esc(when(r.receivedAt))}, due ${esc(when(r.dueAt))} (${esc(countdown(r, Date.now()))})${r.extendedAt ? `, extended ${esc(when(r.extendedAt))}` : ''}</p>
    <div class="timeline" aria-label="Systems">${lanes || '<p class="hint">Not planned yet.</p>'}</div>
    ${final ? `<button type="button" class="button" id="receipt" data-id="${esc(r.requestId)}">Download signed receipt</button>` : ''}`;
}

async function refresh(): Promise<void> {
  try {
    await Promise.all([loadSummary(), loadList(), loadDetail()]);
    $('#status').textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    $('#status').textContent = `could not reach the API: ${(error as Error).message}`;
  }
}

$('#filters').addEventListener('change', () => void loadList());
$('#next').addEventListener('click', () => void loadList(true));
$('#detail').addEventListener('click', (event) => {
  const id = (event.target as HTMLElement).closest<HTMLElement>('#receipt')?.dataset['id'];
  if (id) downloadReceipt(id).catch((error: unknown) => ($('#status').textContent = (error as Error).message));
});
$('#rows').addEventListener('click', (event) => {
  const row = (event.target as HTMLElement).closest('tr');
  if (!row?.dataset['id']) return;
  chosen = row.dataset['id'];
  renderRows();
  void loadDetail();
});
void refresh();
setInterval(() => void refresh(), REFRESH_MS);
