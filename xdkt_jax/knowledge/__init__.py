"""Knowledge extraction (L_k) and item knowledge vectors, one module per concern:

  entities.py      the entity vocabulary: which words of the structured text are knowledge
  labels.py        per-token L_k labels aligned with the LM's tokenisation
  train.py         training and evaluating the knowledge head W_k (on train/trainer.py)
  item_vectors.py  item knowledge vectors, cached on disk under a fingerprint

The rules, as the modules implement them:

L_k = −Σ_i Σ_j log p(k_ij | x_ij, W_k), with labels k_ij derived from the data itself:

ENTITY VOCABULARY (`build_entity_vocab`).  An entity is a WORD of an item's structured text
(`entity_fields`, default: the category path and the brand).  Words are lower-cased,
accent-stripped runs of letters/digits; a word qualifies when it
  * has >= 2 characters and at least one letter, and is not a stopword;
  * names >= `min_df` items (document frequency over all domains' items);
  * covers at most `max_df_frac` of any one domain's items (a root category such as
    "office products" marks the domain, not a piece of knowledge);
  * with `cross_domain_only`, is named by >= `min_domain_df` items in each of >= 2 domains
    (so it BRIDGES catalogues).  Without it, bridging words still rank first.
Ranking: bridging first, then by total document frequency, then alphabetically; the first
`max_size` words get ids 1..E in that order (0 = none).  One vocabulary serves every domain.

TOKEN LABELS (`token_labels`).  The LM text of an item is its joined text fields (title first,
exactly `ItemTable.joined_text`, tokenised exactly like `tokenization.encode_texts`).  A token
that lies in a `label_fields` span (default: the title) gets the id of the word it is part of
iff that word is an entity AND one of the item's own entity-field words (the title names
something the item's category path / brand says it is); otherwise 0 = none.  ALL word pieces
of a labelled word carry its label (`first_piece_only=False`): each piece is then a training
signal and an item's predicted entities do not hinge on its first piece; with
`first_piece_only=True` the later pieces get weight 0 (ignored, the CoNLL convention).
Weights are 1 on every label-field token (entity or none) and 0 on special tokens, padding and
the other fields: those are context x_ij, not targets (a category word would otherwise be
labelled "none" here and the entity in the title, a contradiction).

ITEM KNOWLEDGE (`extract_item_knowledge`): the pooled W_k-encoder vector, optionally
concatenated with the item's entity vector (its expected entity embedding under the tagger),
cached on disk per item under a fingerprint of weights + tokenised text + settings.

A user's source knowledge is not precomputed here: the recommender aggregates the
knowledge of each user's training source items inside the model (models/xdkt.py), so
its aggregation trains with L_f.
"""
