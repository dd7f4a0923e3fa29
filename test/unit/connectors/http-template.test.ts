import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { retryAfterSeconds, scrub } from '#connectors/http-transport';
import { render, renderJson, TEMPLATE_ERRORS } from '#connectors/http/template';
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
