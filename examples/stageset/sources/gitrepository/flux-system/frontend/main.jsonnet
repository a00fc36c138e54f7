// The frontend, one Deployment and Service per locale.
local locales = ['en', 'de'];
local app(locale) = {
  deployment: {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web-' + locale, labels: { app: 'web', locale: locale } },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'web', locale: locale } },
      template: {
        metadata: { labels: { app: 'web', locale: locale } },
        spec: { containers: [{
          name: 'web',
          image: 'ghcr.io/example/shop-web:2.0.1',
          env: [{ name: 'API_URL', value: 'http://api.shop.svc' }, { name: 'LOCALE', value: locale }],
          ports: [{ name: 'http', containerPort: 8080 }],
        }] },
      },
    },
  },
  service: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web-' + locale },
    spec: { selector: { app: 'web', locale: locale }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
  },
};
std.flattenArrays([[app(l).deployment, app(l).service] for l in locales])
