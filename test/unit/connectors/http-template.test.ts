import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { retryAfterSeconds, scrub } from '#connectors/http-transport';
import { pathSegment, render, renderJson, TEMPLATE_ERRORS } from '#connectors/http/template';
import { ConnectorPermanentError } from '#core/errors';

describe('Function: render', () => {
  it('fills names, fields and filters, and keeps doubled braces literal', () => {
    const vars = { email: 'Ada@Example.com', target: { id: 7, object: 'Lead' }, params: { dc: 'us3' } };
    const md5 = createHash('md5').update('ada@example.com').digest('hex');
    expect(render('{params.dc}/{target.object}/{target.id}/{email|lower|md5} {{x}}', vars)).toBe(`us3/Lead/7/${md5} {x}`);
    expect(render("'{v|soql}'", { v: "o'brien\\" })).toBe("'o\\'brien\\\\'");
    expect(render('/users/{v}', { v: 'a/b c' }, encodeURIComponent)).toBe('/users/a%2Fb%20c');
    expect(renderJson({ ids: ['{v}'], n: 1 }, { v: 'x' })).toEqual({ ids: ['x'], n: 1 });
  });

  it('names a missing value, never the values around it', () => {
    expect(() => render('{email}/{user_id}', { email: 'ada@example.com' })).toThrow(new ConnectorPermanentError('http: no value for {user_id}'));
  });

  it('reports syntax problems', () => {
    expect(TEMPLATE_ERRORS('{a b}')).toEqual(['"{a b}": "a b" is not a placeholder name']);
    expect(TEMPLATE_ERRORS('{ok} }')).toEqual(['unbalanced { or }: write {{ and }} for literal braces']);
  });
});

describe('Function: render, fuzzed (fast-check)', () => {
  /** Values made of what paths, queries and search syntaxes are made of, and anything else. */
  const value = fc.oneof(
    fc.array(fc.constantFrom('.', '..', '/', '%', '%2e', '%2E', '%2f', '?', '#', '\\', '"', "'", '*', ' ', '\u0000', 'é', 'u\u0308', 'ada', '@'), { maxLength: 6 }).map((p) => p.join('')),
    fc.string({ maxLength: 40, unit: 'grapheme' }),
  );
  const base = 'https://api.example.test/v2';

  it('fills a path value into exactly one segment, or refuses it; never another resource', () => {
    fc.assert(
      fc.property(value, (v) => {
        let path = '';
        let thrown: unknown;
        try {
          path = render('/lists/L/members/{value}', { value: v }, pathSegment);
        } catch (error) {
          thrown = error;
        }
        // Refused exactly when it would address the resource above.
        expect(thrown instanceof ConnectorPermanentError).toBe(['', '.', '..'].includes(v));
        if (thrown) return;
        const url = new URL(`${new URL(base).pathname}${path}`, base);
        const segments = url.pathname.split('/');
        expect(segments.slice(0, 5)).toEqual(['', 'v2', 'lists', 'L', 'members']);
        expect(segments).toHaveLength(6);
        expect(decodeURIComponent(segments[5]!)).toBe(v);
        expect(url.search + url.hash).toBe('');
      }),
      { numRuns: 2000 },
    );
  });

  it('quotes a phrase so that a search syntax reads back exactly the value, and escapes a SOQL literal', () => {
    fc.assert(
      fc.property(value, (v) => {
        const phrase = render('{v|phrase}', { v });
        // One quoted phrase: no quote inside but escaped ones, and unescaping gives the value back.
        const inner = /^"((?:[^"\\]|\\.)*)"$/.exec(phrase);
        expect(inner).not.toBeNull();
        expect(inner![1]!.replace(/\\(.)/gsu, '$1')).toBe(v);
        const soql = render("'{v|soql}'", { v });
        const literal = /^'((?:[^'\\]|\\.)*)'$/su.exec(soql);
        expect(literal).not.toBeNull();
        expect(literal![1]!.replace(/\\(.)/gsu, '$1')).toBe(v);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('Function: scrub', () => {
  it('removes the sensitive values in their usual forms, and any e-mail address', () => {
    expect(scrub('No such user ADA@example.com / ada%40example.com / bob@corp.example', ['ada@example.com'])).toBe(
      'No such user [redacted] / [redacted] / [redacted]',
    );
    expect(scrub('x'.repeat(300), [])).toHaveLength(201);
  });
});

describe('Function: retryAfterSeconds', () => {
  it('reads seconds or an HTTP date, and defaults to 1', () => {
    expect(retryAfterSeconds('7')).toBe(7);
    expect(retryAfterSeconds(new Date(Date.now() + 30_000).toUTCString())).toBeGreaterThanOrEqual(29);
    expect(retryAfterSeconds(null)).toBe(1);
    expect(retryAfterSeconds('soon')).toBe(1);
  });
});
