"""carts, shipping methods, tax rates, coupons; guest orders and an order's price breakdown

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 10:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AMOUNTS = ("subtotal_minor", "discount_minor", "shipping_minor", "tax_minor")


def upgrade() -> None:
    # A guest's order has no account but an e-mail; an existing order's subtotal is its total.
    op.alter_column('orders', 'account_id', existing_type=sa.Uuid(), nullable=True)
    op.add_column('orders', sa.Column('email', sa.Text(), nullable=True))
    op.add_column('orders', sa.Column('cart_id', sa.Uuid(), nullable=True))
    for name in _AMOUNTS:
        op.add_column('orders', sa.Column(name, sa.BigInteger(), server_default='0', nullable=False))
    op.execute("UPDATE orders SET subtotal_minor = total_minor")
    op.add_column('orders', sa.Column('shipping_method', sa.Text(), nullable=True))
    op.add_column('orders', sa.Column('coupon_code', sa.Text(), nullable=True))
    op.create_check_constraint(
        op.f('ck_orders_account_or_email'), 'orders', 'account_id IS NOT NULL OR email IS NOT NULL'
    )
    op.create_check_constraint(
        op.f('ck_orders_amounts_not_negative'),
        'orders',
        'subtotal_minor >= 0 AND discount_minor >= 0 AND shipping_minor >= 0 AND tax_minor >= 0',
    )
    op.create_index(
        'uq_orders_cart_id_idempotency_key', 'orders', ['cart_id', 'idempotency_key'], unique=True,
        postgresql_where=sa.text('account_id IS NULL'),
    )
    op.create_index('ix_orders_email_created_at', 'orders', ['email', sa.text('created_at DESC')])
    op.create_index('ix_orders_total_minor', 'orders', [sa.text('total_minor DESC'), sa.text('id DESC')])

    op.create_table('shipping_methods',
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('price_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.Text(), nullable=False),
    sa.Column('free_over_minor', sa.BigInteger(), nullable=True),
    sa.Column('countries', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('price_minor >= 0 AND (free_over_minor IS NULL OR free_over_minor >= 0)', name=op.f('ck_shipping_methods_prices')),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_shipping_methods'))
    )
    op.create_table('tax_rates',
    sa.Column('country', sa.Text(), nullable=False),
    sa.Column('rate', sa.Numeric(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('rate >= 0 AND rate <= 100', name=op.f('ck_tax_rates_rate_in_range')),
    sa.PrimaryKeyConstraint('country', name=op.f('pk_tax_rates'))
    )
    op.create_table('coupons',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('percent', sa.Numeric(), nullable=True),
    sa.Column('amount_minor', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.Text(), nullable=True),
    sa.Column('min_subtotal_minor', sa.BigInteger(), nullable=True),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('usage_limit', sa.Integer(), nullable=True),
    sa.Column('per_customer_limit', sa.Integer(), nullable=True),
    sa.Column('used', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('PERCENT', 'FIXED')", name=op.f('ck_coupons_kind_known')),
    sa.CheckConstraint('used >= 0 AND (usage_limit IS NULL OR used <= usage_limit)', name=op.f('ck_coupons_used_within_limit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coupons')),
    sa.UniqueConstraint('code', name=op.f('uq_coupons_code'))
    )
    op.create_index('ix_coupons_created_at', 'coupons', [sa.text('created_at DESC'), sa.text('id DESC')])
    op.create_table('coupon_uses',
    sa.Column('order_id', sa.Uuid(), nullable=False),
    sa.Column('coupon_id', sa.Uuid(), nullable=False),
    sa.Column('customer', sa.Text(), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_coupon_uses_order_id_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['coupon_id'], ['coupons.id'], name=op.f('fk_coupon_uses_coupon_id_coupons'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('order_id', name=op.f('pk_coupon_uses'))
    )
    op.create_index('ix_coupon_uses_coupon_id_customer', 'coupon_uses', ['coupon_id', 'customer'])
    op.create_table('carts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sa.Text(), nullable=True),
    sa.Column('account_id', sa.Uuid(), nullable=True),
    sa.Column('email', sa.Text(), nullable=True),
    sa.Column('shipping_address', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('shipping_method', sa.Text(), nullable=True),
    sa.Column('coupon_code', sa.Text(), nullable=True),
    sa.Column('order_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('token_hash IS NOT NULL OR account_id IS NOT NULL', name=op.f('ck_carts_addressable')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_carts')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_carts_token_hash'))
    )
    op.create_index(
        'uq_carts_open_account_id', 'carts', ['account_id'], unique=True,
        postgresql_where=sa.text('account_id IS NOT NULL AND token_hash IS NULL AND order_id IS NULL'),
    )
    op.create_index('ix_carts_expires_at', 'carts', ['expires_at'])
    op.create_table('cart_lines',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('cart_id', sa.Uuid(), nullable=False),
    sa.Column('product_id', sa.Uuid(), nullable=False),
    sa.Column('variant_id', sa.Text(), nullable=True),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('shown_price_minor', sa.BigInteger(), nullable=True),
    sa.Column('shown_currency', sa.Text(), nullable=True),
    sa.Column('added_at', sa.DateTime(timezone=True), server_default=sa.text('clock_timestamp()'), nullable=False),
    sa.CheckConstraint('quantity BETWEEN 1 AND 1000', name=op.f('ck_cart_lines_quantity_in_range')),
    sa.ForeignKeyConstraint(['cart_id'], ['carts.id'], name=op.f('fk_cart_lines_cart_id_carts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cart_lines')),
    sa.UniqueConstraint('cart_id', 'product_id', name=op.f('uq_cart_lines_cart_id_product_id'))
    )


def downgrade() -> None:
    op.drop_table('cart_lines')
    op.drop_index('ix_carts_expires_at', table_name='carts')
    op.drop_index('uq_carts_open_account_id', table_name='carts')
    op.drop_table('carts')
    op.drop_index('ix_coupon_uses_coupon_id_customer', table_name='coupon_uses')
    op.drop_table('coupon_uses')
    op.drop_index('ix_coupons_created_at', table_name='coupons')
    op.drop_table('coupons')
    op.drop_table('tax_rates')
    op.drop_table('shipping_methods')
    op.drop_index('ix_orders_total_minor', table_name='orders')
    op.drop_index('ix_orders_email_created_at', table_name='orders')
    op.drop_index('uq_orders_cart_id_idempotency_key', table_name='orders')
    op.drop_constraint(op.f('ck_orders_amounts_not_negative'), 'orders', type_='check')
    op.drop_constraint(op.f('ck_orders_account_or_email'), 'orders', type_='check')
    for name in ('coupon_code', 'shipping_method', *_AMOUNTS, 'cart_id', 'email'):
        op.drop_column('orders', name)
    op.execute("DELETE FROM orders WHERE account_id IS NULL")
    op.alter_column('orders', 'account_id', existing_type=sa.Uuid(), nullable=False)
