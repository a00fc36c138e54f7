local lib = import 'lib/app.libsonnet';
function(replicas=2) [
  lib.deployment('api', 'registry.k8s.io/api:v1', replicas),
  lib.service('api', 8080),
]
