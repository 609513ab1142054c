"""L_f, L_k and the alignment terms against slow NumPy references: value and gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xdkt_jax import losses, report


def vg(f, **kw):
  """jit(value_and_grad): one compile instead of one per primitive (eager op-by-op is the
  slow part of these tests on CPU)."""
  return jax.jit(jax.value_and_grad(f, **kw))


def num_grad(f, x, eps=1e-4):
  """Central differences of a float64 numpy function."""
  x = np.asarray(x, np.float64)
  g = np.zeros_like(x)
  for idx in np.ndindex(x.shape):
    xp, xm = x.copy(), x.copy()
    xp[idx] += eps
    xm[idx] -= eps
    g[idx] = (f(xp) - f(xm)) / (2 * eps)
  return g


def lse(z):
  m = z.max(-1, keepdims=True)
  return (np.log(np.exp(z - m).sum(-1, keepdims=True)) + m)[..., 0]


def log_sigmoid(x):
  return -np.logaddexp(0.0, -x)


# ---------------------------------------------------------------------------------------------
# transfer_loss (L_f)


def np_full_softmax(u, e, y, w):
  z = u @ e.T
  nll = lse(z) - z[np.arange(len(y)), y]
  return (nll * w).sum() / max(w.sum(), 1.0)


def _data(seed=0, b=6, n=9, d=4):
  rng = np.random.default_rng(seed)
  u = rng.normal(size=(b, d)).astype(np.float32)
  e = rng.normal(size=(n, d)).astype(np.float32)
  y = rng.integers(0, n, size=b)
  w = (rng.random(b) < 0.7).astype(np.float32)
  w[0] = 1.0
  return u, e, y, w


def test_transfer_full_softmax_value_and_hand_grad():
  u, e, y, w = _data()
  f = lambda uu, ee: losses.transfer_loss(
    user_repr_BxD=uu, item_emb_NxD=ee, target_B=jnp.asarray(y), weights_B=jnp.asarray(w)
  )[0]
  val, (gu, ge) = vg(f, argnums=(0, 1))(jnp.asarray(u), jnp.asarray(e))
  np.testing.assert_allclose(val, np_full_softmax(u, e, y, w), rtol=1e-5)
  # Hand-derived: dL/dz = w (softmax(z) − onehot(y)) / Σw; dU = G E, dE = Gᵀ U.
  z = (u @ e.T).astype(np.float64)
  p = np.exp(z - lse(z)[:, None])
  p[np.arange(len(y)), y] -= 1.0
  g = p * w[:, None] / w.sum()
  np.testing.assert_allclose(gu, g @ e, atol=1e-5)
  np.testing.assert_allclose(ge, g.T @ u, atol=1e-5)


def test_transfer_full_softmax_accuracy_is_weighted_top1():
  u, e, y, w = _data()
  z = u @ e.T
  y = y.copy()
  y[:3] = np.argmax(z[:3], 1)  # a few rows where the target IS the top item
  _, aux = losses.transfer_loss(
    user_repr_BxD=jnp.asarray(u),
    item_emb_NxD=jnp.asarray(e),
    target_B=jnp.asarray(y),
    weights_B=jnp.asarray(w),
  )
  hit = (np.argmax(z, 1) == y).astype(np.float32)
  assert hit[:3].all() and not hit.all()
  np.testing.assert_allclose(float(aux["accuracy"]), (hit * w).sum() / w.sum(), rtol=1e-6)


def test_transfer_sequence_form_equals_flattened():
  u, e, y, w = _data(b=6)
  flat = losses.transfer_loss(user_repr_BxD=u, item_emb_NxD=e, target_B=y, weights_B=w)
  seq = losses.transfer_loss(
    user_repr_BxD=u.reshape(2, 3, -1),
    item_emb_NxD=e,
    target_B=y.reshape(2, 3),
    weights_B=w.reshape(2, 3),
  )
  np.testing.assert_allclose(seq[0], flat[0], rtol=1e-6)
  assert float(seq[1]["n"]) == w.sum()


@pytest.mark.parametrize("logq", [False, True])
def test_transfer_sampled_softmax_vs_numpy(logq):
  u, e, y, w = _data(seed=1)
  n, k = e.shape[0], 5
  rng = jax.random.PRNGKey(3)
  lq_in = np.random.default_rng(2).normal(size=n).astype(np.float32) if logq else None
  # The documented draw: k negatives shared by the batch.
  if logq:
    neg = np.asarray(jax.random.categorical(rng, jnp.asarray(lq_in), shape=(k,)))
    lq = lq_in - lse(lq_in.astype(np.float64))
  else:
    neg = np.asarray(jax.random.randint(rng, (k,), 0, n))
    lq = np.full(n, -np.log(n))

  def ref(uu, ee=e.astype(np.float64)):
    pos = (uu * ee[y]).sum(-1) - lq[y]
    negl = uu @ ee[neg].T - lq[neg][None]
    negl = np.where(neg[None] == y[:, None], -np.inf, negl)
    z = np.concatenate([pos[:, None], negl], 1)
    nll = lse(z) - z[:, 0]
    return (nll * w).sum() / w.sum()

  f = lambda uu: losses.transfer_loss(
    user_repr_BxD=uu,
    item_emb_NxD=jnp.asarray(e),
    target_B=jnp.asarray(y),
    weights_B=jnp.asarray(w),
    kind="sampled_softmax",
    rng=rng,
    num_negatives=k,
    logq_N=None if lq_in is None else jnp.asarray(lq_in),
  )[0]
  val, g = vg(f)(jnp.asarray(u))
  np.testing.assert_allclose(val, ref(u.astype(np.float64)), rtol=1e-5)
  np.testing.assert_allclose(g, num_grad(ref, u), atol=1e-4)


def test_transfer_bpr_vs_numpy():
  u, e, y, w = _data(seed=2)
  n, k = e.shape[0], 3
  rng = jax.random.PRNGKey(5)
  neg = np.asarray(jax.random.randint(rng, (len(y), k), 0, n))

  def ref(ee, uu=u.astype(np.float64)):
    pos = (uu * ee[y]).sum(-1)
    negs = np.einsum("bd,bkd->bk", uu, ee[neg])
    nll = -log_sigmoid(pos[:, None] - negs).mean(1)
    return (nll * w).sum() / w.sum()

  f = lambda ee: losses.transfer_loss(
    user_repr_BxD=jnp.asarray(u),
    item_emb_NxD=ee,
    target_B=jnp.asarray(y),
    weights_B=jnp.asarray(w),
    kind="bpr",
    rng=rng,
    num_negatives=k,
  )[0]
  val, g = vg(f)(jnp.asarray(e))
  np.testing.assert_allclose(val, ref(e.astype(np.float64)), rtol=1e-5)
  np.testing.assert_allclose(g, num_grad(ref, e), atol=1e-4)


def test_transfer_rejects_unknown_kind_and_missing_rng():
  u, e, y, _ = _data()
  with pytest.raises(ValueError, match="kind"):
    losses.transfer_loss(user_repr_BxD=u, item_emb_NxD=e, target_B=y, kind="nce")
  with pytest.raises(ValueError, match="rng"):
    losses.transfer_loss(user_repr_BxD=u, item_emb_NxD=e, target_B=y, kind="bpr")


# ---------------------------------------------------------------------------------------------
# knowledge_loss (L_k)


def test_knowledge_loss_vs_numpy_with_unlabelled_tokens():
  rng = np.random.default_rng(4)
  logits = rng.normal(size=(2, 5, 4)).astype(np.float32)
  labels = rng.integers(0, 4, size=(2, 5))
  w = (rng.random((2, 5)) < 0.6).astype(np.float32)
  w[0, 0] = 1
  labels = np.where(w > 0, labels, -1)  # unlabelled tokens carry −1

  def ref(lg):
    z = lg.reshape(-1, 4)
    lab, ww = labels.reshape(-1), w.reshape(-1)
    nll = lse(z) - z[np.arange(len(lab)), np.maximum(lab, 0)]
    return (nll * ww).sum() / ww.sum()

  f = lambda lg: losses.knowledge_loss(
    logits_BxLxK=lg, labels_BxL=jnp.asarray(labels), weights_BxL=jnp.asarray(w)
  )[0]
  val, g = vg(f)(jnp.asarray(logits))
  np.testing.assert_allclose(val, ref(logits.astype(np.float64)), rtol=1e-5)
  np.testing.assert_allclose(g, num_grad(ref, logits), atol=1e-4)


# ---------------------------------------------------------------------------------------------
# Alignment terms.


def np_mmd(x, y, kernel, bw, unbiased=False):
  def k(a, b):
    if kernel == "linear":
      return a @ b.T
    d2 = ((a[:, None] - b[None]) ** 2).sum(-1)
    return sum(np.exp(-d2 / (2 * s * s)) for s in bw)

  kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
  if not unbiased:
    return kxx.mean() + kyy.mean() - 2 * kxy.mean()
  n, m = len(x), len(y)
  return (
    (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    - 2 * kxy.mean()
  )


@pytest.mark.parametrize("kernel,unbiased", [("rbf", False), ("rbf", True), ("linear", False)])
def test_mmd_value_and_grad_vs_numpy(kernel, unbiased):
  rng = np.random.default_rng(5)
  x = rng.normal(size=(5, 3)).astype(np.float32)
  y = (rng.normal(size=(4, 3)) + 0.5).astype(np.float32)
  bw = (0.5, 1.0, 2.0)
  f = lambda xx: losses.mmd(
    x_NxD=xx, y_MxD=jnp.asarray(y), kernel=kernel, bandwidths=bw, unbiased=unbiased
  )
  val, g = vg(f)(jnp.asarray(x))
  ref = lambda xx: np_mmd(xx, y.astype(np.float64), kernel, bw, unbiased)
  np.testing.assert_allclose(val, ref(x.astype(np.float64)), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(g, num_grad(ref, x), atol=2e-4)


def test_mmd_zero_for_identical_positive_for_shifted():
  x = np.random.default_rng(6).normal(size=(32, 4)).astype(np.float32)
  for kernel in ("rbf", "linear"):
    assert abs(float(losses.mmd(x_NxD=x, y_MxD=x, kernel=kernel))) < 1e-5
    assert float(losses.mmd(x_NxD=x, y_MxD=x + 1.0, kernel=kernel)) > 0.1
  # linear MMD² is exactly the squared distance of the means.
  np.testing.assert_allclose(losses.mmd(x_NxD=x, y_MxD=x + 1.0, kernel="linear"), 4.0, rtol=1e-4)


def np_coral(x, y):
  d = x.shape[1]
  return ((np.cov(x, rowvar=False) - np.cov(y, rowvar=False)) ** 2).sum() / (4 * d * d)


def test_coral_value_grad_and_zero_for_equal_covariance():
  rng = np.random.default_rng(7)
  x = rng.normal(size=(8, 3)).astype(np.float32)
  y = (rng.normal(size=(6, 3)) * np.array([1.0, 2.0, 0.5])).astype(np.float32)
  f = lambda xx: losses.coral(x_NxD=xx, y_MxD=jnp.asarray(y))
  val, g = vg(f)(jnp.asarray(x))
  ref = lambda xx: np_coral(xx, y.astype(np.float64))
  np.testing.assert_allclose(val, ref(x.astype(np.float64)), rtol=1e-5)
  np.testing.assert_allclose(g, num_grad(ref, x), atol=1e-5)
  # A shifted copy has the same covariance: CORAL ignores the mean.
  assert abs(float(losses.coral(x_NxD=x, y_MxD=x + 3.0))) < 1e-8


def test_info_nce_equals_manual_cross_entropy():
  rng = np.random.default_rng(8)
  a = rng.normal(size=(5, 4)).astype(np.float32)
  b = rng.normal(size=(5, 4)).astype(np.float32)
  tau = 0.2

  def ref(aa, bb=b.astype(np.float64)):
    an = aa / np.linalg.norm(aa, axis=1, keepdims=True)
    bn = bb / np.linalg.norm(bb, axis=1, keepdims=True)
    z = an @ bn.T / tau
    i = np.arange(len(z))
    ce_ab = (lse(z) - z[i, i]).mean()
    ce_ba = (lse(z.T) - z[i, i]).mean()
    return 0.5 * (ce_ab + ce_ba)

  f = lambda aa: losses.info_nce(a_BxD=aa, b_BxD=jnp.asarray(b), temperature=tau)
  val, g = vg(f)(jnp.asarray(a))
  np.testing.assert_allclose(val, ref(a.astype(np.float64)), rtol=1e-5)
  np.testing.assert_allclose(g, num_grad(ref, a), atol=1e-4)
  # Padded rows drop out as anchors and as negatives.
  w = np.array([1, 1, 1, 0, 0], np.float32)
  np.testing.assert_allclose(
    losses.info_nce(a_BxD=a, b_BxD=b, temperature=tau, weights_B=w),
    ref(a[:3].astype(np.float64), b[:3].astype(np.float64)),
    rtol=1e-5,
  )


def test_gradient_reversal_reverses_and_scales():
  x = jnp.arange(6.0).reshape(2, 3)
  c = jnp.array([[1.0, -2.0, 3.0], [0.5, 0.0, 1.0]])
  np.testing.assert_array_equal(losses.gradient_reversal(x, 0.7), x)
  g = jax.grad(lambda xx: jnp.sum(c * losses.gradient_reversal(xx, 0.7)))(x)
  np.testing.assert_allclose(g, -0.7 * c, rtol=1e-6)
  # lam may be traced (a schedule under jit).
  g2 = jax.jit(jax.grad(lambda xx, lam: jnp.sum(c * losses.gradient_reversal(xx, lam))))(
    x, jnp.float32(2.0)
  )
  np.testing.assert_allclose(g2, -2.0 * c, rtol=1e-6)


def test_domain_adversarial_loss_trains_classifier_and_reverses_features():
  rng = np.random.default_rng(9)
  feats = jnp.asarray(rng.normal(size=(6, 3)).astype(np.float32))
  dom = jnp.asarray(np.array([0, 1, 0, 1, 1, 0]))
  wc = jnp.asarray(rng.normal(size=(3, 2)).astype(np.float32))

  def plain(f, w):  # the classifier CE without reversal
    z = f @ w
    return -jnp.mean(jax.nn.log_softmax(z)[jnp.arange(6), dom])

  def adv(f, w):
    return losses.domain_adversarial_loss(
      features_NxD=f, domain_N=dom, logits_fn=lambda h: h @ w, lam=0.5
    )[0]

  gf_p, gw_p = jax.jit(jax.grad(plain, argnums=(0, 1)))(feats, wc)
  gf_a, gw_a = jax.jit(jax.grad(adv, argnums=(0, 1)))(feats, wc)
  np.testing.assert_allclose(adv(feats, wc), plain(feats, wc), rtol=1e-6)
  np.testing.assert_allclose(gw_a, gw_p, rtol=1e-5)  # classifier: ordinary descent
  np.testing.assert_allclose(gf_a, -0.5 * gf_p, rtol=1e-5)  # features: reversed, scaled
  loss, m = losses.domain_adversarial_loss(domain_N=dom, logits_NxK=feats @ wc)
  np.testing.assert_allclose(loss, plain(feats, wc), rtol=1e-6)
  assert 0.0 <= float(m["domain_accuracy"]) <= 1.0
  with pytest.raises(ValueError, match="exactly one"):
    losses.domain_adversarial_loss(domain_N=dom, features_NxD=feats)


def test_info_nce_gradient_finite_with_masked_zero_row():
  """A user without source history has an all-zero representation and weight 0: the loss and
  its gradient must stay finite (the gradient of |x| at 0 is 0/0)."""
  rng = np.random.default_rng(3)
  a = rng.normal(size=(4, 3)).astype(np.float32)
  a[2] = 0.0
  b = rng.normal(size=(4, 3)).astype(np.float32)
  w = np.array([1, 1, 0, 1], np.float32)
  f = lambda x: losses.info_nce(a_BxD=x, b_BxD=b, weights_B=w)
  val, g = vg(f)(a)
  assert np.isfinite(float(val)) and np.isfinite(np.asarray(g)).all()
  np.testing.assert_allclose(np.asarray(g)[2], 0.0, atol=1e-7)
  # Dropping the masked row gives the same loss as masking it.
  keep = np.array([0, 1, 3])
  ref = losses.info_nce(a_BxD=a[keep], b_BxD=b[keep])
  np.testing.assert_allclose(float(val), float(ref), rtol=1e-5)


def test_the_reports_alignment_numbers_are_the_training_terms_estimator():
  """report.alignment_numbers uses losses.mmd (no second MMD): unstandardised after the
  adaptor it is exactly the L_align value; linear MMD² is |mean x − mean y|² of the
  standardised views."""
  rng = np.random.default_rng(0)
  views = {
    k: (rng.normal(size=(30, 4)) + (0.5 if k.startswith("target") else 0.0)).astype(np.float32)
    for k in ("source_before", "target_before", "source_after", "target_after")
  }
  got = report.alignment_numbers(views)
  term = losses.mmd(
    x_NxD=jnp.asarray(views["source_after"]), y_MxD=jnp.asarray(views["target_after"]), kernel="rbf"
  )
  assert got["mmd_rbf_after_raw"] == pytest.approx(float(term), rel=1e-6)
  s, t = views["source_before"], views["target_before"]
  scale = np.sqrt(np.mean(np.var(np.concatenate([s, t]), 0).sum()))
  want = np.sum((s.mean(0) - t.mean(0)) ** 2) / scale**2
  assert got["mmd_linear_before"] == pytest.approx(want, rel=1e-4)
  assert got["mmd_rbf_before"] > 0 and got["mmd_rbf_after"] > 0
