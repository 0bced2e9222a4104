import sys, yaml
for f in sys.stdin.read().split():
    meta = yaml.safe_load(open(f).read()[4:].split('\n---\n', 1)[0])
    wf = meta['world_files'][0]
    if wf.endswith('/worlds/harbour/world.yaml'): wf = wf[:-len('/world.yaml')]
    print(wf, meta['settings']['seed'], ",".join(meta['request']['characters']))
