/** A duration for people: `42 s`, `7.5 min`, `3.2 h`, `12.4 d`. */
export function humanDuration(seconds: number): string {
  if (seconds < 60) return `${String(Math.round(seconds * 10) / 10)} s`;
  if (seconds < 3600) return `${String(Math.round(seconds / 6) / 10)} min`;
  if (seconds < 86_400) return `${String(Math.round(seconds / 360) / 10)} h`;
  return `${String(Math.round(seconds / 8640) / 10)} d`;
}
